// The config's inputs and models as rows of screen 1 (see rows.js).
import { rowList } from "./rows.js";

export const inputs = rowList({
  box: "inputs",
  add: "input-add",
  noun: "input",
  path: (i, key) => `inputs[${i}].${key}`,
  fields: [
    { key: "path", stem: "input-path", label: "Input", placeholder: "data/scan.nii.gz or data/*.png", browse: true },
    { key: "targets", stem: "input-targets", label: "Targets (comma-separated)", placeholder: "1", numbers: true },
    { key: "ground_truth", stem: "input-truth", label: "Ground truth (optional)", placeholder: "data/{stem}_mask.nii.gz", browse: true },
    { key: "mask", stem: "input-mask", label: "Region for the mask wrapper", browse: true },
  ],
});

// One model is the config's `model`; several are `models`, each with its own name.
export const models = rowList({
  box: "models",
  add: "model-add",
  noun: "model",
  path: (i, key, count) => (count === 1 ? `model.${key}` : `models[${i}].${key}`),
  fields: [
    { key: "path", stem: "model-path", label: "Model", placeholder: "demo/model.onnx", browse: true },
    { key: "name", stem: "model-name", label: "Name (labels its outputs; needed with several)" },
    { key: "task", stem: "model-task", label: "Task", options: [["classification", "classification"], ["segmentation", "segmentation"]] },
    { key: "wrapper", stem: "model-wrapper", label: "Wrapper (segmentation)", options: [["", "(default: argmax)"], ["argmax", "argmax"], ["threshold", "threshold"], ["mask", "mask"]] },
    { key: "mask_mode", stem: "model-mask-mode", label: "Segmentation mask", options: [["", "(default: dynamic)"], ["dynamic", "dynamic (on every perturbed input)"], ["fixed", "fixed (once, on the input)"]] },
    { key: "output_index", stem: "model-output-index", label: "Output index", placeholder: "0", number: true },
  ],
});
