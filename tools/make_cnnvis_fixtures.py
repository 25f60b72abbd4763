"""References for the cnnvis plugin's guided and optimisation methods (plugins/cnnvis).

What it does
------------
Rebuilds the small models of tests/fixtures/layers (tools/make_layer_fixtures.py) with the
weights of their committed ONNX files, then writes into ``tests/fixtures/cnnvis/``:

* ``cases.json`` + ``<case>.npy``: Captum 0.9's ``NeuronGuidedBackprop`` with the neuron
  selector ``sum |A[:, filter]|`` (CNN-visualisations' layer activation with guided
  backpropagation) on the 2D classifier and the 3D segmenter, in the format of
  tests/fixtures/cases.json;
* ``optimise.json`` + ``<case>_steps.npy``: this script's own plain-PyTorch implementations of
  DeepDream, layer visualisation and inverted representation, written from their papers
  (there is no installable reference), run from the same seeded start esegeta draws, with
  the image after each of the first steps.

How to rerun
------------
    . tools/env.sh && python tools/make_cnnvis_fixtures.py

It needs torch, captum 0.9, numpy and onnx in the esegeta virtualenv. Seeded, float32, CPU,
one thread; the output is the same on every run.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from captum.attr import NeuronGuidedBackprop
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_layer_fixtures as mlf  # noqa: E402  (the models)
import cnnvis_reference as ref  # noqa: E402  (the optimisation methods, in plain PyTorch)

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ROOT / "tests" / "fixtures" / "layers"
OUT = ROOT / "tests" / "fixtures" / "cnnvis"


def with_onnx_weights(model, onnx_file):
    """`model` with the initializers of `onnx_file` (same names as its state dict)."""
    graph = onnx.load(str(LAYERS / onnx_file)).graph
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    model.load_state_dict({k: weights[k] for k in model.state_dict()})
    return model.eval()


def load_input(name):
    return torch.from_numpy(np.load(LAYERS / name))


def guided_case(name, model, onnx_file, x_file, layer, channel):
    """NeuronGuidedBackprop of sum |A[:, channel]| at `layer`."""
    x = load_input(x_file)
    module = dict(model.named_modules())[layer]
    select = lambda a: a[:, channel].abs().flatten(1).sum(1)  # noqa: E731
    attr = NeuronGuidedBackprop(model, module).attribute(x, neuron_selector=select)
    np.save(OUT / f"{name}.npy", attr.detach().numpy().astype(np.float32))
    return {
        "name": name,
        "model": f"../layers/{onnx_file}",
        "input": f"../layers/{x_file}",
        "method": "cnnvis.layer_activation_guided_backprop",
        "params": {"filter": channel},
        "target": None,
        "task": "segmentation" if "segmenter" in onnx_file else "classification",
        "wrapper": "argmax" if "segmenter" in onnx_file else None,
        "layer": layer,
        "expected": f"{name}.npy",
        "extras": {},
        "check": "exact",
        "note": f"NeuronGuidedBackprop(model, model.{layer}).attribute(x, neuron_selector="
                f"lambda a: a[:, {channel}].abs().flatten(1).sum(1)), model = {onnx_file}",
    }


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    clf = with_onnx_weights(mlf.Classifier2d(), "classifier2d.onnx")
    seg = with_onnx_weights(mlf.Segmenter3d(), "segmenter3d.onnx")
    cases = [
        guided_case("c2d_guided_filter_conv2", clf, "classifier2d.onnx", "c2d_x.npy", "conv2", 3),
        guided_case("c2d_guided_filter_act1_b2", clf, "classifier2d.onnx", "c2d_x2.npy", "act1", 1),
        guided_case("s3d_guided_filter_mid", seg, "segmenter3d.onnx", "s3d_x.npy", "mid", 2),
    ]
    (OUT / "cases.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    optimise = ref.write_cases(OUT, {"classifier2d.onnx": clf, "segmenter3d.onnx": seg},
                               LAYERS, load_input)
    (OUT / "optimise.json").write_text(json.dumps({"cases": optimise}, indent=1) + "\n")
    for c in cases:
        a = np.load(OUT / c["expected"])
        print(f"{c['name']:32s} shape {list(a.shape)} max|map| {np.abs(a).max():.4g}")
    for c in optimise:
        print(f"{c['name']:32s} {c['method']}")


if __name__ == "__main__":
    main()
