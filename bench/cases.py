"""The benchmark's cases and methods: one table of what runs, in esegeta's terms (method id and
parameters) and in Captum's (class, attribute arguments, and the grid that tunes it), plus how
many model evaluations each needs at least (the limit).

A case is a model file, an input and a task wrapper; a method runs on every case. `--quick`
shrinks steps, samples and windows; the default keeps the sizes the issue names.
"""

from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = HERE / "models"


@dataclass
class Case:
    name: str
    model: Path  # TorchScript: Captum's model, and esegeta's for methods that run on it
    onnx: Path  # the same model exported to ONNX, for esegeta's graph methods
    eager: str  # make_models.eager's name: the PyTorch module for Captum's hook methods
    layer: str  # the layer LayerGradCam explains (a module path, the same in both tools)
    input: Path
    groups: Path  # 64 feature groups for feature ablation and Shapley sampling
    wrapper: str | None  # None (classification), "argmax" or "threshold"
    target: int
    # Occlusion window and stride, per non-batch dimension.
    window: list
    stride: list
    quick_window: list
    quick_stride: list


VESSELS = ROOT / "configs/vessels/models"

CASES = [
    Case("resnet18 1x3x224x224", MODELS / "resnet18.pt", MODELS / "resnet18.onnx", "resnet18",
         "layers.7", MODELS / "image.npy", MODELS / "image_groups.npy", None, 3,
         [3, 32, 32], [3, 16, 16], [3, 56, 56], [3, 56, 56]),
    Case("unet3d argmax 1x1x64^3", MODELS / "unet3d.pt", MODELS / "unet3d.onnx", "unet3d",
         "bottom", MODELS / "volume.npy", MODELS / "volume_groups.npy", "argmax", 1,
         [1, 32, 32, 32], [1, 16, 16, 16], [1, 32, 32, 32], [1, 32, 32, 32]),
    # Opt-in (--all): it doubles the run's time.
    Case("vessel unet threshold 1x1x64^3", VESSELS / "unet.pt", VESSELS / "unet.onnx",
         "vessel_unet", "net.bottom", MODELS / "volume.npy", MODELS / "volume_groups.npy",
         "threshold", 1,
         [1, 32, 32, 32], [1, 16, 16, 16], [1, 32, 32, 32], [1, 32, 32, 32]),
]


@dataclass
class Method:
    """One benchmarked method with the settings both tools get.

    `evals(case)` is the limit's work: how many examples go through the model, and whether each
    needs a backward to the input.
    """
    name: str
    esegeta_id: str
    sampled: bool  # random draws differ between the tools: the difference is sampling noise
    # Captum's tuning knob (an attribute() keyword) and its values; None in the grid is
    # Captum's default.
    knob: str | None
    grid: list = field(default_factory=list)
    # esegeta runs the ONNX export (graph methods, incremental evaluation) instead of the
    # TorchScript file; Captum always runs the PyTorch model.
    onnx: bool = False
    # esegeta's parameter "incremental" (occlusion and feature ablation on ONNX).
    incremental: bool | None = None


def settings(quick):
    """Steps and samples: the issue's sizes, or the --quick ones."""
    return {
        "n_steps": 10 if quick else 50,
        "nt_samples": 5 if quick else 20,
        "shapley_samples": 1,
        "n_perturb_samples": 4 if quick else 10,
        "stdevs": 0.1,
        "infidelity_stdevs": 0.01,
        "perturb_radius": 0.02,
    }


METHODS = [
    Method("integrated_gradients", "captum.integrated_gradients", False,
           "internal_batch_size", [None, 10]),
    Method("smoothgrad (saliency)", "captum.saliency", True,
           "nt_samples_batch_size", [None, 5]),
    Method("occlusion", "captum.occlusion", False, "perturbations_per_eval", [1, 16]),
    Method("occlusion, ONNX incremental", "captum.occlusion", False, "perturbations_per_eval",
           [1, 16], onnx=True, incremental=True),
    Method("feature_ablation 64 groups", "captum.feature_ablation", False,
           "perturbations_per_eval", [1, 16]),
    Method("feature_ablation 64 groups, ONNX incremental", "captum.feature_ablation", False,
           "perturbations_per_eval", [1, 16], onnx=True, incremental=True),
    Method("shapley_value_sampling 64 groups", "captum.shapley_value_sampling", True,
           "perturbations_per_eval", [1, 16]),
    Method("guided_backprop, ONNX", "captum.guided_backprop", False, None, [None], onnx=True),
    Method("layer_grad_cam, ONNX", "captum.layer_grad_cam", False, None, [None], onnx=True),
    Method("infidelity (saliency)", "captum.infidelity", True,
           "max_examples_per_batch", [None]),
    Method("sensitivity_max (saliency)", "captum.sensitivity_max", True,
           "max_examples_per_batch", [None]),
]


def window(case, quick):
    return (case.quick_window, case.quick_stride) if quick else (case.window, case.stride)


def occlusion_count(case, quick):
    """Captum's number of window positions: prod(ceil((size - window) / stride) + 1)."""
    import numpy as np
    shape = np.load(case.input, mmap_mode="r").shape[1:]
    win, stride = window(case, quick)
    count = 1
    for n, w, s in zip(shape, win, stride):
        count *= -(-(n - w) // s) + 1
    return count


def esegeta_params(method, case, quick):
    s = settings(quick)
    m = method.esegeta_id
    saliency = {"method": "captum.saliency"}
    if m == "captum.integrated_gradients":
        return {"n_steps": s["n_steps"]}
    if m == "captum.saliency":
        return {"noise_tunnel": {"nt_type": "smoothgrad", "nt_samples": s["nt_samples"],
                                 "stdevs": s["stdevs"]}}
    extra = {} if method.incremental is None else {"incremental": method.incremental}
    if m == "captum.occlusion":
        win, stride = window(case, quick)
        return {"sliding_window_shapes": win, "strides": stride, **extra}
    if m == "captum.feature_ablation":
        return {"feature_mask": str(case.groups), **extra}
    if m == "captum.guided_backprop":
        return {}
    if m == "captum.layer_grad_cam":
        return {"layer": case.layer}
    if m == "captum.shapley_value_sampling":
        return {"feature_mask": str(case.groups), "n_samples": s["shapley_samples"]}
    if m == "captum.infidelity":
        return {"explained": saliency, "n_perturb_samples": s["n_perturb_samples"],
                "perturbation": {"kind": "gaussian", "stdevs": s["infidelity_stdevs"]}}
    if m == "captum.sensitivity_max":
        return {"explained": saliency, "n_perturb_samples": s["n_perturb_samples"],
                "perturb_radius": s["perturb_radius"]}
    raise ValueError(m)


def evaluations(method, case, quick):
    """(examples through the model without gradient, examples with a backward to the input):
    what the method cannot do without."""
    s = settings(quick)
    m = method.esegeta_id
    groups = 64
    if m == "captum.integrated_gradients":
        return 0, s["n_steps"]
    if m == "captum.saliency":
        return 0, s["nt_samples"]
    if m == "captum.occlusion":
        return occlusion_count(case, quick) + 1, 0
    if m == "captum.feature_ablation":
        return groups + 1, 0
    if m == "captum.shapley_value_sampling":
        return s["shapley_samples"] * groups + 1, 0
    if m in ("captum.guided_backprop", "captum.layer_grad_cam"):
        return 0, 1
    if m == "captum.infidelity":
        # The saliency map, the unperturbed score, and one score per perturbation.
        return s["n_perturb_samples"] + 1, 1
    if m == "captum.sensitivity_max":
        # The map of the input and of each perturbed copy.
        return 0, s["n_perturb_samples"] + 1
    raise ValueError(m)
