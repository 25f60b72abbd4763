"""Build the Captum reference fixtures used by esegeta's Rust tests.

What it does
------------
Builds a few tiny, randomly initialised (seeded) PyTorch models, exports them
to TorchScript, runs Captum 0.9 attribution methods on the *reloaded*
TorchScript modules (wrapped in the segmentation "task wrappers" that the Rust
host re-implements) and writes everything into ``tests/fixtures/``:

* ``*.pt``        TorchScript models
* ``*_x*.npy``    inputs (float32, batch dimension included)
* ``*.npy``       masks / baselines / expected attributions
* ``cases.json``  one entry per attribution case (see tools/README.md)
* ``vol.nii.gz``, ``rgb.png``, ``gray.png`` (+ ``.npy`` twins) for the I/O code

How to rerun
------------
From the repository root::

    ~/.cache/esegeta/venv/bin/python tools/make_fixtures.py

The run is deterministic (seeded, float32, CPU, one thread): running it twice
produces byte-identical files (the .pt models aside: their zip metadata changes on every
save).  It needs torch, captum 0.9, numpy, nibabel, Pillow and scikit-learn (Captum's Lime and
KernelShap fit with it): `pip install captum==0.9.0 nibabel pillow scikit-learn` into the
esegeta virtualenv.
"""

import json
import math
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import (
    FeatureAblation,
    FeaturePermutation,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    Lime,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyValues,
    ShapleyValueSampling,
)
from captum.attr._core.lime import get_exp_kernel_similarity_function
from captum._utils.models.linear_model import SkLearnLasso, SkLearnLinearRegression

import sys
sys.path.insert(0, str(Path(__file__).resolve().parent))
from task_wrappers import (  # noqa: E402,F401 - re-exported: other tools use mf.ArgmaxScores
    ARGMAX_STATS, OTSU_STATS, argmax_mask, note_argmax_gap, spatial_sum, ArgmaxScores, otsu_threshold, note_otsu_gap, threshold_mask, ThresholdScores, MaskScores,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures"
SIZE_LIMIT = 2 * 1024 * 1024
NT_SAMPLES = 2000
SEED_SPREAD_RUNS = 4  # extra Captum runs with other seeds for statistical cases

# Published expectation of captum/tests/attr/test_occlusion.py
# (Test.test_simple_multi_input_conv, first input, target 0): the model is
# BasicModel_ConvNet_One_Conv called as net(x, ones(1, 1, 4, 4)) and
# x = arange(16).view(1, 1, 4, 4).
PUBLISHED_ONE_CONV = {
    "full": {
        "params": {"sliding_window_shapes": [1, 4, 4]},
        "ppe": (1, 2, 4, 8, 12, 16),
        "values": [[[[67.0] * 4] * 4]],
    },
    "2x3": {
        "params": {"sliding_window_shapes": [1, 2, 3], "strides": [1, 2, 1]},
        "ppe": (1, 3, 7, 14),
        "values": [[[
            [17.0, 17.0, 17.0, 17.0],
            [17.0, 17.0, 17.0, 17.0],
            [64.0, 65.5, 65.5, 67.0],
            [64.0, 65.5, 65.5, 67.0],
        ]]],
    },
}

WRITTEN = {}  # file name -> role, for the final table


# --------------------------------------------------------------------------
# setup and file helpers
# --------------------------------------------------------------------------


def setup_determinism():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True, warn_only=True)


def start_fixtures(out):
    """A fixture script's start: torch seeded with 0 on one thread, and `out` created empty."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()


def name_seed(name):
    """A stable per-name seed, so cases do not depend on run order."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def save_npy(name, array, role):
    array = np.ascontiguousarray(array)
    np.save(OUT / name, array, allow_pickle=False)
    WRITTEN[name] = role
    return name


def save_tensor(name, tensor, role="input"):
    arr = tensor.detach().cpu().numpy()
    if arr.dtype not in (np.float32, np.int64):
        raise TypeError(f"{name}: unexpected dtype {arr.dtype}")
    return save_npy(name, arr, role)


def load_npy_tensor(name):
    return torch.from_numpy(np.load(OUT / name))


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------


class Classifier2d(nn.Module):
    """[B,3,8,8] -> [B,3]; with fixed_b1 the traced graph only takes B=1."""

    def __init__(self, fixed_b1=False):
        super().__init__()
        self.fixed_b1 = fixed_b1
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h = self.pool(F.relu(self.conv1(x)))
        h = self.gap(F.relu(self.conv2(h)))
        h = h.reshape(1, -1) if self.fixed_b1 else torch.flatten(h, 1)
        return self.fc(h)


class Segmenter3d(nn.Module):
    """Tiny 3D UNet: [B,1,8,8,8] -> [B,out_ch,8,8,8] (optionally sigmoid)."""

    def __init__(self, out_ch=2, sigmoid=False):
        super().__init__()
        self.sigmoid = sigmoid
        self.enc = nn.Conv3d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool3d(2)
        self.mid = nn.Conv3d(4, 8, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.head = nn.Conv3d(12, out_ch, 1)

    def forward(self, x):
        skip = F.relu(self.enc(x))
        h = self.up(F.relu(self.mid(self.pool(skip))))
        out = self.head(torch.cat([h, skip], dim=1))
        return torch.sigmoid(out) if self.sigmoid else out


class OneConvX2Ones(nn.Module):
    """Captum's BasicModel_ConvNet_One_Conv evaluated as net(x, ones)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, 1)
        self.fc1 = nn.Linear(8, 4)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.ones(2, 1, 3, 3))
            self.conv1.bias.copy_(torch.tensor([-50.0, -75.0]))
            self.fc1.weight.copy_(torch.cat([torch.ones(4, 5), -torch.ones(4, 3)], 1))
            self.fc1.bias.zero_()

    def forward(self, x):
        x = x + torch.ones_like(x)
        x = F.relu(self.conv1(x)).view(-1, 8)
        return F.relu(self.fc1(x))


def seeded(seed, factory):
    torch.manual_seed(seed)
    return factory().eval()


def export_trace(model, example, name, ok_batches=(1, 5), bad_batches=()):
    """Trace, save, reload and check which batch sizes the module accepts."""
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    torch.jit.save(traced, str(OUT / name))
    WRITTEN[name] = "model"
    loaded = torch.jit.load(str(OUT / name)).eval()
    for b in ok_batches:
        check_batch_ok(model, loaded, example, b, name)
    for b in bad_batches:
        check_batch_fails(loaded, example, b, name)
    return loaded


def check_batch_ok(model, loaded, example, b, name):
    x = torch.rand((b,) + tuple(example.shape[1:]))
    with torch.no_grad():
        if not torch.allclose(model(x), loaded(x), atol=1e-6):
            raise AssertionError(f"{name}: traced output differs at batch {b}")


def check_batch_fails(loaded, example, b, name):
    x = torch.rand((b,) + tuple(example.shape[1:]))
    try:
        with torch.no_grad():
            loaded(x)
    except RuntimeError:
        return
    raise AssertionError(f"{name}: batch {b} unexpectedly accepted")


# --------------------------------------------------------------------------
# task wrappers (the Rust host implements the i--------------------------------------------------------


def quadrant_mask(batch):
    m = torch.zeros(8, 8, dtype=torch.int64)
    m[:4, 4:], m[4:, :4], m[4:, 4:] = 1, 2, 3
    return m.expand(batch, 3, 8, 8).contiguous()


def octant_mask():
    i = torch.arange(8) // 4
    m = i.view(8, 1, 1) * 4 + i.view(1, 8, 1) * 2 + i.view(1, 1, 8)
    return m.view(1, 1, 8, 8, 8).to(torch.int64)


def roi_blob():
    g = torch.arange(8, dtype=torch.float32)
    d2 = ((g.view(8, 1, 1) - 3.0) ** 2 + (g.view(1, 8, 1) - 4.5) ** 2
          + (g.view(1, 1, 8) - 4.0) ** 2 / 2.0)
    return (d2 <= 6.5).to(torch.float32)


def make_inputs():
    """Random inputs and masks; returns {file name: tensor}."""
    specs = {
        "classifier2d_x.npy": (101, (1, 3, 8, 8)),
        "classifier2d_x2.npy": (102, (2, 3, 8, 8)),
        "classifier2d_baseline.npy": (103, (1, 3, 8, 8)),
        "seg3d_x.npy": (104, (1, 1, 8, 8, 8)),
    }
    tensors = {}
    for name, (seed, shape) in specs.items():
        torch.manual_seed(seed)
        tensors[name] = torch.rand(shape)
    tensors["captum_one_conv_x.npy"] = torch.arange(16.0).view(1, 1, 4, 4)
    tensors["classifier2d_quadrants.npy"] = quadrant_mask(1)
    tensors["classifier2d_quadrants_b2.npy"] = quadrant_mask(2)
    tensors["seg3d_octants.npy"] = octant_mask()
    tensors["roi.npy"] = roi_blob()
    for name, t in tensors.items():
        save_tensor(name, t, "mask" if t.dtype == torch.int64 else "input")
    return tensors


def balance_argmax(seg, x):
    """Shift head.bias[1] so that both classes win on part of the voxels.

    The shift is the midpoint of the widest gap between neighbouring sorted
    logit differences (searched between the 25% and 75% quantiles), so no
    voxel of the saved input sits close to an argmax tie.
    """
    with torch.no_grad():
        out = seg(x)
        d = (out[:, 0] - out[:, 1]).flatten().sort().values
        lo, hi = d.numel() // 4, 3 * d.numel() // 4
        k = lo + int((d[lo:hi + 1] - d[lo - 1:hi]).argmax())
        seg.head.bias[1] += 0.5 * float(d[k - 1] + d[k])
        out = seg(x)
        margin = float((out[:, 0] - out[:, 1]).abs().min())
        counts = torch.bincount(out.argmax(1).flatten(), minlength=2)
    if (counts == 0).any():
        raise AssertionError(f"argmax is constant: {counts.tolist()}")
    return counts.tolist(), margin


def make_models(tensors):
    """Export all TorchScript models; returns {file name: loaded module}."""
    x2d, x3d = tensors["classifier2d_x.npy"], tensors["seg3d_x.npy"]
    clf = seeded(1, Classifier2d)
    clf_b1 = Classifier2d(fixed_b1=True).eval()
    clf_b1.load_state_dict(clf.state_dict())
    seg = seeded(2, lambda: Segmenter3d(2))
    counts, margin = balance_argmax(seg, x3d)
    print(f"segmenter3d argmax class counts {counts}, min |logit gap| {margin:.3g}")
    seg_fg = seeded(3, lambda: Segmenter3d(1, sigmoid=True))
    return {
        "classifier2d.pt": export_trace(clf, x2d, "classifier2d.pt"),
        "classifier2d_fixed_b1.pt": export_trace(
            clf_b1, x2d, "classifier2d_fixed_b1.pt", (1,), (2,)),
        "segmenter3d.pt": export_trace(seg, x3d, "segmenter3d.pt", (1, 3)),
        "segmenter3d_fg.pt": export_trace(seg_fg, x3d, "segmenter3d_fg.pt", (1, 3)),
        "captum_one_conv.pt": export_one_conv(tensors["captum_one_conv_x.npy"]),
    }


def export_one_conv(x):
    model = OneConvX2Ones().eval()
    check_against_captum_helper(model, x)
    return export_trace(model, x, "captum_one_conv.pt", (1, 3))


def check_against_captum_helper(model, x):
    """My re-implementation must equal Captum's own test helper model."""
    try:
        from captum.testing.helpers.basic_models import BasicModel_ConvNet_One_Conv
    except ImportError:
        print("captum.testing not installed: helper comparison skipped")
        return
    with torch.no_grad():
        ref = BasicModel_ConvNet_One_Conv()(x, torch.ones_like(x))
        if not torch.equal(ref, model(x)):
            raise AssertionError("OneConvX2Ones differs from Captum's helper model")


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------


def case(name, model, inp, method, params=None, target=1, wrapper=None,
         mask=None, fixed=False, check="exact", note=""):
    return {
        "name": name, "model": model, "input": inp,
        "method": "captum." + method, "params": params or {},
        "target": target,
        "task": "classification" if wrapper is None else "segmentation",
        "wrapper": wrapper, "mask": mask, "fixed_mask": fixed,
        "expected": name + ".npy", "extras": {}, "check": check, "note": note,
    }


def ig(method, n_steps, **extra):
    return {"n_steps": n_steps, "method": method, **extra}


OCC_2D = {"sliding_window_shapes": [3, 3, 3], "strides": [1, 2, 2]}
QUAD = "classifier2d_quadrants.npy"


def classifier_cases():
    m, x = "classifier2d.pt", "classifier2d_x.npy"
    cases = [
        case("classifier2d_saliency", m, x, "saliency"),
        case("classifier2d_saliency_noabs", m, x, "saliency", {"abs": False}),
        case("classifier2d_input_x_gradient", m, x, "input_x_gradient"),
        case("classifier2d_ig_gausslegendre", m, x, "integrated_gradients",
             ig("gausslegendre", 50)),
    ]
    for rule in ("left", "right", "middle", "trapezoid"):
        cases.append(case(f"classifier2d_ig_riemann_{rule}", m, x,
                          "integrated_gradients", ig(f"riemann_{rule}", 20)))
    cases += [
        case("classifier2d_ig_gausslegendre_ibs7_baseline", m, x,
             "integrated_gradients",
             ig("gausslegendre", 50, internal_batch_size=7,
                baselines="classifier2d_baseline.npy")),
        case("classifier2d_occlusion", m, x, "occlusion", {**OCC_2D, "baselines": 0}),
        case("classifier2d_occlusion_b05_ppe4", m, x, "occlusion",
             {**OCC_2D, "baselines": 0.5, "perturbations_per_eval": 4}),
        case("classifier2d_feature_ablation", m, x, "feature_ablation"),
        case("classifier2d_feature_ablation_quadrants", m, x, "feature_ablation",
             {"feature_mask": QUAD, "baselines": 0.2, "perturbations_per_eval": 3}),
    ]
    return cases + permutation_cases() + sampling_cases()


def permutation_cases():
    m, x2 = "classifier2d.pt", "classifier2d_x2.npy"
    return [
        case("classifier2d_feature_permutation", m, x2, "feature_permutation"),
        case("classifier2d_feature_permutation_quadrants", m, x2,
             "feature_permutation", {"feature_mask": "classifier2d_quadrants_b2.npy"}),
    ]


def sampling_cases():
    m, x = "classifier2d.pt", "classifier2d_x.npy"
    cases = [case("classifier2d_shapley_sampling_quadrants", m, x,
                  "shapley_value_sampling", {"n_samples": 200, "feature_mask": QUAD},
                  check="statistical")]
    for nt_type in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        nt = {"noise_tunnel": {"nt_type": nt_type, "nt_samples": NT_SAMPLES,
                               "stdevs": 0.1}}
        cases.append(case(f"classifier2d_nt_{nt_type}_saliency", m, x, "saliency",
                          dict(nt), check="statistical"))
        cases.append(case(f"classifier2d_nt_{nt_type}_ig", m, x,
                          "integrated_gradients", {**nt, **ig("gausslegendre", 10)},
                          check="statistical"))
    return cases


def fixed_b1_cases():
    m, x = "classifier2d_fixed_b1.pt", "classifier2d_x.npy"
    return [
        case("classifier2d_fixed_b1_ig_gausslegendre", m, x, "integrated_gradients",
             ig("gausslegendre", 50)),
        case("classifier2d_fixed_b1_occlusion_ppe4", m, x, "occlusion",
             {**OCC_2D, "perturbations_per_eval": 4}),
    ]


def segmentation_cases():
    s, fg, x = "segmenter3d.pt", "segmenter3d_fg.pt", "seg3d_x.npy"
    occ3 = {"sliding_window_shapes": [1, 3, 3, 3], "strides": [1, 2, 2, 2]}
    return [
        case("seg3d_argmax_saliency", s, x, "saliency", wrapper="argmax"),
        case("seg3d_argmax_saliency_target0", s, x, "saliency", target=0,
             wrapper="argmax"),
        case("seg3d_argmax_input_x_gradient", s, x, "input_x_gradient",
             wrapper="argmax"),
        case("seg3d_argmax_ig_trapezoid", s, x, "integrated_gradients",
             ig("riemann_trapezoid", 20), wrapper="argmax"),
        case("seg3d_argmax_occlusion", s, x, "occlusion", occ3, wrapper="argmax"),
        case("seg3d_argmax_feature_ablation_octants", s, x, "feature_ablation",
             {"feature_mask": "seg3d_octants.npy"}, wrapper="argmax"),
        case("seg3d_argmax_fixed_saliency", s, x, "saliency", wrapper="argmax",
             fixed=True),
        case("seg3d_argmax_fixed_ig", s, x, "integrated_gradients",
             ig("gausslegendre", 20), wrapper="argmax", fixed=True),
        case("seg3d_fg_threshold_saliency", fg, x, "saliency", wrapper="threshold"),
        case("seg3d_fg_threshold_ig", fg, x, "integrated_gradients",
             ig("gausslegendre", 20), wrapper="threshold"),
        case("seg3d_fg_threshold_fixed_saliency", fg, x, "saliency",
             wrapper="threshold", fixed=True),
        case("seg3d_mask_saliency", s, x, "saliency", wrapper="mask", mask="roi.npy"),
        case("seg3d_mask_occlusion", s, x, "occlusion",
             {"sliding_window_shapes": [1, 2, 2, 2], "strides": [1, 2, 2, 2]},
             wrapper="mask", mask="roi.npy"),
    ]


def published_cases():
    return [
        case(f"captum_one_conv_occlusion_{key}", "captum_one_conv.pt",
             "captum_one_conv_x.npy", "occlusion", dict(spec["params"]), target=0)
        for key, spec in PUBLISHED_ONE_CONV.items()
    ]


def shapley_values_cases():
    """Exact Shapley values: Captum's ShapleyValues walks all n! orders (8 octants: 322,560
    evaluations, hence perturbations_per_eval), esegeta all 2^n coalitions."""
    return [
        case("classifier2d_shapley_values_quadrants", "classifier2d.pt", "classifier2d_x.npy",
             "shapley_values", {"feature_mask": QUAD}),
        case("classifier2d_x2_shapley_values_quadrants", "classifier2d.pt",
             "classifier2d_x2.npy", "shapley_values", {"feature_mask": QUAD, "baselines": 0.2}),
        case("seg3d_argmax_shapley_values_octants", "segmenter3d.pt", "seg3d_x.npy",
             "shapley_values", {"feature_mask": "seg3d_octants.npy",
                                "perturbations_per_eval": 256}, wrapper="argmax"),
    ]


def surrogate_cases():
    """Lime and KernelShap: sampled, so checked against Captum's own spread over seeds.
    Lime's default alpha (0.01) zeroes every coefficient at these models' score scale (so
    does Captum's), hence a smaller one."""
    m, s = "classifier2d.pt", "segmenter3d.pt"
    lime = {"n_samples": 2000, "feature_mask": QUAD, "alpha": 1e-4}
    return [
        case("classifier2d_kernel_shap_quadrants", m, "classifier2d_x.npy", "kernel_shap",
             {"n_samples": 2000, "feature_mask": QUAD}, check="statistical"),
        case("classifier2d_x2_kernel_shap_quadrants", m, "classifier2d_x2.npy", "kernel_shap",
             {"n_samples": 1000, "feature_mask": QUAD, "baselines": 0.2},
             check="statistical"),
        case("classifier2d_lime_quadrants", m, "classifier2d_x.npy", "lime", lime,
             check="statistical"),
        case("classifier2d_lime_euclidean_quadrants", m, "classifier2d_x.npy", "lime",
             {**lime, "distance_mode": "euclidean", "kernel_width": 3.0},
             check="statistical"),
        case("seg3d_argmax_kernel_shap_octants", s, "seg3d_x.npy", "kernel_shap",
             {"n_samples": 2000, "feature_mask": "seg3d_octants.npy"}, wrapper="argmax",
             check="statistical"),
        case("seg3d_argmax_lime_octants", s, "seg3d_x.npy", "lime",
             {"n_samples": 2000, "feature_mask": "seg3d_octants.npy", "alpha": 1e-3},
             wrapper="argmax", check="statistical"),
    ]


def all_cases():
    return (classifier_cases() + fixed_b1_cases() + segmentation_cases()
            + published_cases() + shapley_values_cases() + surrogate_cases())


# --------------------------------------------------------------------------
# running Captum
# --------------------------------------------------------------------------

METHODS = {
    "captum.saliency": Saliency,
    "captum.input_x_gradient": InputXGradient,
    "captum.integrated_gradients": IntegratedGradients,
    "captum.occlusion": Occlusion,
    "captum.feature_ablation": FeatureAblation,
    "captum.feature_permutation": FeaturePermutation,
    "captum.shapley_value_sampling": ShapleyValueSampling,
    "captum.shapley_values": ShapleyValues,
    "captum.kernel_shap": KernelShap,
    "captum.lime": Lime,
}
# esegeta's Lime parameters that are Captum constructor arguments.
LIME_MODEL_PARAMS = ("alpha", "distance_mode", "kernel_width")
TUPLE_PARAMS = ("sliding_window_shapes", "strides")


def resolve_params(params, tensors):
    """JSON params -> Captum keyword arguments (files -> tensors, lists -> tuples)."""
    kwargs = {}
    for key, value in params.items():
        if key == "noise_tunnel":
            continue
        if isinstance(value, str) and value.endswith(".npy"):
            value = tensors[value]
        elif key in TUPLE_PARAMS and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return kwargs


def forward_fn(c, models, tensors, model_name=None):
    model = models[model_name or c["model"]]
    x = tensors[c["input"]]
    fixed_input = x if c["fixed_mask"] else None
    if c["wrapper"] == "argmax":
        return ArgmaxScores(model, fixed_input)
    if c["wrapper"] == "threshold":
        return ThresholdScores(model, fixed_input)
    if c["wrapper"] == "mask":
        return MaskScores(model, tensors[c["mask"]])
    return model


def attribute(method, fn, x, target, params, tensors, seed):
    """One Captum call; returns (attribution, convergence delta or None)."""
    torch.manual_seed(seed)
    kwargs = resolve_params(params, tensors)
    algo = lime(fn, kwargs) if method == "captum.lime" else METHODS[method](fn)
    if "noise_tunnel" in params:
        nt = dict(params["noise_tunnel"])
        return NoiseTunnel(algo).attribute(x, target=target, **nt, **kwargs), None
    if method == "captum.integrated_gradients":
        return algo.attribute(x, target=target, return_convergence_delta=True, **kwargs)
    return algo.attribute(x, target=target, **kwargs), None


def lime(fn, kwargs):
    """Captum's Lime with esegeta's model parameters (taken out of `kwargs`)."""
    model = {k: kwargs.pop(k) for k in LIME_MODEL_PARAMS if k in kwargs}
    alpha = model.get("alpha", 0.01)
    surrogate = SkLearnLasso(alpha=alpha) if alpha > 0 else SkLearnLinearRegression()
    similarity = get_exp_kernel_similarity_function(
        model.get("distance_mode", "cosine"), model.get("kernel_width", 1.0))
    return Lime(fn, interpretable_model=surrogate, similarity_func=similarity)


def run_case(c, models, tensors):
    """Compute the expected attribution and the extras of one case."""
    if c["model"] == "classifier2d_fixed_b1.pt":
        return run_fixed_b1(c, models, tensors)
    if c["method"] == "captum.shapley_value_sampling":
        return run_shapley_sampling(c, models, tensors)
    fn = forward_fn(c, models, tensors)
    attr, delta = attribute(c["method"], fn, tensors[c["input"]], c["target"],
                            c["params"], tensors, name_seed(c["name"]))
    extras = {} if delta is None else {"convergence_delta": delta.tolist()}
    if c["check"] == "statistical":
        extras.update(seed_spread(c, fn, tensors, attr))
    return attr, extras


def seed_spread(c, fn, tensors, expected):
    """How far Captum itself lands from `expected` under other seeds."""
    devs = []
    for k in range(SEED_SPREAD_RUNS):
        attr, _ = attribute(c["method"], fn, tensors[c["input"]],
                            c["target"], c["params"], tensors,
                            name_seed(c["name"]) + 1 + k)
        devs.append(float((attr - expected).abs().max()))
    return {"captum_other_seeds_max_abs_dev": max(devs),
            "captum_other_seeds_runs": SEED_SPREAD_RUNS,
            "expected_max_abs": float(expected.abs().max())}


def run_shapley_sampling(c, models, tensors):
    """Expected = Captum's exact ShapleyValues on the same feature groups."""
    fn = forward_fn(c, models, tensors)
    exact_params = {k: v for k, v in c["params"].items() if k != "n_samples"}
    attr, _ = attribute("captum.shapley_values", fn, tensors[c["input"]],
                        c["target"], exact_params, tensors, 0)
    c["note"] += "; expected = ShapleyValues(...) (exact, all 24 permutations)"
    return attr, seed_spread(c, fn, tensors, attr)


def run_fixed_b1(c, models, tensors):
    """Captum cannot batch this model: compute on classifier2d.pt, verify on b1."""
    fn = forward_fn(c, models, tensors, "classifier2d.pt")
    x = tensors[c["input"]]
    attr, delta = attribute(c["method"], fn, x, c["target"], c["params"], tensors, 0)
    is_ig = c["method"] == "captum.integrated_gradients"
    knob = "internal_batch_size" if is_ig else "perturbations_per_eval"
    check, _ = attribute(c["method"], models[c["model"]], x, c["target"],
                         {**c["params"], knob: 1}, tensors, 0)
    if not torch.allclose(attr, check, rtol=1e-5, atol=1e-6):
        raise AssertionError(f"{c['name']}: batch-1 Captum run differs")
    c["note"] += (f"; computed on classifier2d.pt (same weights); Captum on this "
                  f"batch-1 model with {knob}=1 agrees to 1e-5")
    extras = {} if delta is None else {"convergence_delta": delta.tolist()}
    return attr, extras


def check_published(c, models, tensors, attr):
    """Assert Captum reproduces the values published in its own test suite."""
    key = c["name"].rsplit("_", 1)[-1]
    spec = PUBLISHED_ONE_CONV[key]
    published = torch.tensor(spec["values"])
    for ppe in spec["ppe"]:
        params = {**c["params"], "perturbations_per_eval": ppe}
        got, _ = attribute(c["method"], models[c["model"]], tensors[c["input"]],
                           c["target"], params, tensors, 0)
        if not torch.allclose(got, published, atol=1e-4, rtol=0):
            raise AssertionError(f"{c['name']}: ppe={ppe} misses published values")
    if not torch.allclose(attr, published, atol=1e-4, rtol=0):
        raise AssertionError(f"{c['name']}: expected misses published values")


# --------------------------------------------------------------------------
# per-case extra checks and notes
# --------------------------------------------------------------------------


def describe(c):
    """One-line note: the Captum call that produced the expected output."""
    cls = METHODS[c["method"]].__name__
    args = ", ".join(f"{k}={v!r}" for k, v in c["params"].items()
                     if k != "noise_tunnel")
    call = f"{cls}(f).attribute(x, target={c['target']}{', ' if args else ''}{args})"
    if "noise_tunnel" in c["params"]:
        nt = ", ".join(f"{k}={v!r}" for k, v in c["params"]["noise_tunnel"].items())
        call = f"NoiseTunnel({cls}(f)).attribute(x, target={c['target']}, {nt}"
        call += f"{', ' if args else ''}{args})"
    f = c["model"] if c["wrapper"] is None else f"{c['wrapper']}_wrapper({c['model']})"
    fixed = " [fixed mask]" if c["fixed_mask"] else ""
    return f"{call} with f = {f}{fixed}"


def check_permutation_deterministic(c, models, tensors, attr):
    fn = forward_fn(c, models, tensors)
    for seed in (1, 12345):
        again, _ = attribute(c["method"], fn, tensors[c["input"]], c["target"],
                             c["params"], tensors, seed)
        if not torch.equal(again, attr):
            raise AssertionError(f"{c['name']}: depends on the seed")
    c["note"] += "; seed-independent (randperm of a batch of 2 must swap)"


def check_shape_and_finite(c, tensors, attr):
    if not torch.isfinite(attr).all():
        raise AssertionError(f"{c['name']}: non-finite attribution")
    if attr.shape != tensors[c["input"]].shape:
        raise AssertionError(f"{c['name']}: shape {tuple(attr.shape)}")


def post_checks(c, models, tensors, attr):
    check_shape_and_finite(c, tensors, attr)
    if c["method"] == "captum.feature_permutation":
        check_permutation_deterministic(c, models, tensors, attr)
    if c["name"].startswith("captum_one_conv"):
        check_published(c, models, tensors, attr)
        c["note"] += "; equals captum tests/attr/test_occlusion.py published values"
    if c["wrapper"] == "threshold":
        c["extras"]["otsu_threshold"] = otsu_of_input(c, models, tensors)


def otsu_of_input(c, models, tensors):
    with torch.no_grad():
        y = models[c["model"]](tensors[c["input"]])[:, 0]
        y_norm = (y[0] - y[0].min()) / (y[0].max() - y[0].min())
    return otsu_threshold(y_norm.flatten())


def build_case(c, models, tensors):
    c["note"] = describe(c)
    attr, extras = run_case(c, models, tensors)
    attr = attr.detach().to(torch.float32)
    c["extras"].update(extras)
    post_checks(c, models, tensors, attr)
    save_tensor(c["expected"], attr, "expected")
    return c


# --------------------------------------------------------------------------
# I/O fixtures: NIfTI and PNG
# --------------------------------------------------------------------------


def volume_affine():
    a = math.radians(30.0)
    rot = np.array([[math.cos(a), -math.sin(a), 0.0],
                    [math.sin(a), math.cos(a), 0.0],
                    [0.0, 0.0, 1.0]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.5, 0.8, 1.2])
    aff[:3, 3] = [-10.0, 5.0, 20.0]
    return aff


def write_nifti():
    import nibabel as nib

    data = np.arange(8 * 6 * 4, dtype=np.float32).reshape(8, 6, 4)
    img = nib.Nifti1Image(data, volume_affine())
    img.set_data_dtype(np.float32)
    img.set_qform(volume_affine(), code=1)
    img.set_sform(volume_affine(), code=1)
    nib.save(img, str(OUT / "vol.nii.gz"))
    WRITTEN["vol.nii.gz"] = "io"
    back = nib.load(str(OUT / "vol.nii.gz"))
    assert np.array_equal(back.get_fdata(dtype=np.float32), data)
    assert np.allclose(back.affine, volume_affine(), atol=1e-5)
    save_npy("vol.npy", data[None, None], "io")
    save_npy("vol_affine.npy", np.asarray(back.affine, dtype=np.float64), "io")


def write_pngs():
    from PIL import Image

    i, j = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    rgb = np.stack([i * 32 + 3, j * 32 + 7, (i * 8 + j) * 4 + 1], -1).astype(np.uint8)
    gray = ((i * 8 + j) * 4 + 2).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(OUT / "rgb.png")
    Image.fromarray(gray, "L").save(OUT / "gray.png")
    WRITTEN["rgb.png"] = WRITTEN["gray.png"] = "io"
    assert np.array_equal(np.asarray(Image.open(OUT / "rgb.png")), rgb)
    save_npy("rgb.npy", (rgb.transpose(2, 0, 1)[None] / 255.0).astype(np.float32), "io")
    save_npy("gray.npy", (gray[None, None] / 255.0).astype(np.float32), "io")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def write_linear_models():
    """scikit-learn's fits of weighted problems like Lime's and KernelShap's (binary
    features, an intercept), solved to convergence in float64: the reference of the
    captum plugin's linear_model.rs."""
    from sklearn.linear_model import Lasso, LinearRegression
    rng = np.random.default_rng(7)
    problems = []
    for name, n, m, alpha, endpoints in [("lasso", 60, 6, 0.01, False),
                                         ("lasso_sparse", 60, 6, 0.2, False),
                                         ("least_squares", 40, 5, 0.0, True),
                                         ("least_squares_underdetermined", 5, 8, 0.0, True)]:
        x = (rng.random((n, m)) < 0.5).astype(np.float64)
        if endpoints:
            x[0], x[1] = 1.0, 0.0
        y = x @ rng.normal(size=m) + 0.1 * rng.normal(size=n) + 0.5
        w = rng.random(n) + 0.1
        if endpoints:
            w[:2] = 1e6
        if alpha > 0:
            model = Lasso(alpha=alpha, tol=1e-14, max_iter=1_000_000)
        else:
            model = LinearRegression()
        model.fit(x, y, sample_weight=w)
        problems.append({"name": name, "alpha": alpha, "x": x.tolist(), "y": y.tolist(),
                         "weights": w.tolist(), "coef": model.coef_.tolist()})
    (OUT / "linear_models.json").write_text(json.dumps(problems, indent=1) + "\n")


def write_cases(cases):
    text = json.dumps(cases, indent=1) + "\n"
    (OUT / "cases.json").write_text(text)
    WRITTEN["cases.json"] = "index"


def print_table(cases):
    print(f"\n{'case':48s} {'method':32s} {'check':11s} {'shape':18s} bytes")
    for c in cases:
        path = OUT / c["expected"]
        shape = str(tuple(np.load(path).shape))
        print(f"{c['name']:48s} {c['method']:32s} {c['check']:11s} {shape:18s} "
              f"{path.stat().st_size}")
    total = sum((OUT / n).stat().st_size for n in WRITTEN)
    print(f"\n{len(cases)} cases, {len(WRITTEN)} files, {total} bytes in total")
    if total > SIZE_LIMIT:
        raise AssertionError("fixtures exceed 2 MB")
    stray = sorted(p.name for p in OUT.iterdir() if p.name not in WRITTEN)
    if stray:
        print("files in tests/fixtures not written by this script:", stray)


def main():
    setup_determinism()
    OUT.mkdir(parents=True, exist_ok=True)
    tensors = make_inputs()
    models = make_models(tensors)
    cases = [build_case(c, models, tensors) for c in all_cases()]
    write_linear_models()
    write_cases(cases)
    write_nifti()
    write_pngs()
    print_table(cases)
    print(f"Otsu: {OTSU_STATS['calls']} thresholds, float32 arithmetic would "
          f"differ in {OTSU_STATS['f32_disagreements']}, smallest relative gap "
          f"between the best and the next lower split variance "
          f"{OTSU_STATS['min_var_gap']:.3g}")
    print(f"argmax: {ARGMAX_STATS['calls']} masks, smallest top-2 logit gap "
          f"{ARGMAX_STATS['min_gap']:.3g}")


if __name__ == "__main__":
    main()
