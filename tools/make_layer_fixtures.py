"""Build the Captum references for esegeta's layer and rule-based methods.

What it does
------------
Builds small seeded PyTorch models whose nonlinearities are ``nn.ReLU``
*modules*, one instance per use (Captum hooks modules, not ``F.relu`` calls,
and DeepLift refuses a module used twice), exports each to ONNX with a dynamic
batch dimension (``torch.onnx.export(..., dynamo=True)``), checks the export
against PyTorch with onnxruntime (or onnx.checker when onnxruntime is absent),
runs Captum 0.9 on the PyTorch modules (through the segmentation wrappers of
``tools/make_fixtures.py`` for the 3D segmenter) and writes everything into
``tests/fixtures/layers/``:

* ``*.onnx`` + ``*.onnx.data``  the exported models (external data, as the
  exporter writes it)
* ``models.json``  per model: input shape, output shape and its layers
  (module path -> module type, output shape on the saved input)
* ``*_x*.npy``, ``*_baseline*.npy``, ``*_mask*.npy``  inputs, baselines, masks
* ``<case>.npy``  Captum's attribution (or the value Captum's own test suite
  publishes, for the ``captum_*`` cases, after checking Captum reproduces it)
* ``cases.json``  one entry per case, in the format of tests/fixtures/cases.json
  plus ``layer`` (module path in the exported model) and ``baselines``

How to rerun
------------
From the repository root::

    . tools/env.sh && python tools/make_layer_fixtures.py

It needs torch, captum 0.9, numpy, onnx and onnxscript (onnxruntime optional)
in the esegeta virtualenv, and pytorch-grad-cam 1.5.7 for the cnnvis cases
(`pip install --no-deps grad-cam==1.5.7`, then its imports: torchvision of torch's
release, ttach, tqdm, opencv-python-headless, matplotlib), and zennit 0.5.1 for the LRP
cases with zennit's rules (`pip install --no-deps zennit==0.5.1`). It is deterministic
(seeded, float32, CPU, one thread; the .onnx files aside: re-exports differ in a few
bytes, so the committed ones stay). It ends with a table of the cases and max|map|.
"""

import json
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from captum.attr import (
    LRP,
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    InternalInfluence,
    LayerActivation,
    LayerConductance,
    LayerDeepLift,
    LayerDeepLiftShap,
    LayerFeatureAblation,
    LayerGradCam,
    LayerGradientShap,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    LayerLRP,
    NeuronConductance,
    NeuronFeatureAblation,
    NeuronGradient,
    NeuronGradientShap,
    NeuronIntegratedGradients,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (the task wrappers and helpers)
from layer_oracles import GRADIENT_CAMS, gradient_cam, score_cam, zennit_lrp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "layers"
SIZE_LIMIT = 3 * 1024 * 1024
SEED_SPREAD_RUNS = 4  # extra Captum runs with other seeds for sampled cases
SHAP_SAMPLES = 2000  # n_samples of the sampled cases (spread ~ 1/sqrt(n))
ONNX_RTOL = 1e-5

WRITTEN = {}  # file name -> role
MODELS = {}  # onnx file name -> description for models.json


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------


class Classifier2d(nn.Module):
    """[B,3,8,8] -> [B,3]: conv-relu-maxpool-conv-relu-avgpool-linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.act2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h = self.pool1(self.act1(self.conv1(x)))
        h = self.gap(self.act2(self.conv2(h)))
        return self.fc(torch.flatten(h, 1))


class Segmenter3d(nn.Module):
    """Tiny 3D UNet [B,1,8,8,8] -> [B,2,8,8,8] with a concat skip."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv3d(1, 4, 3, padding=1)
        self.enc_act = nn.ReLU()
        self.pool = nn.MaxPool3d(2)
        self.mid = nn.Conv3d(4, 8, 3, padding=1)
        self.mid_act = nn.ReLU()
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.head = nn.Conv3d(12, 2, 1)

    def forward(self, x):
        skip = self.enc_act(self.enc(x))
        h = self.up(self.mid_act(self.mid(self.pool(skip))))
        return self.head(torch.cat([h, skip], dim=1))


class Rules2d(nn.Module):
    """[B,3,8,8] -> [B,3] class probabilities, built to exercise every DeepLift
    rule Captum has: each hooked nonlinearity (MaxPool2d, LeakyReLU, ELU, Tanh,
    Softplus, Sigmoid, Softmax) takes its input from a conv/linear layer, so no
    rule is bypassed by the hook order (see the spec, section 0)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.act2 = nn.LeakyReLU(0.1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.act3 = nn.Linear(6, 8), nn.ELU()
        self.fc2, self.act4 = nn.Linear(8, 8), nn.Tanh()
        self.fc3, self.act5 = nn.Linear(8, 8), nn.Softplus()
        self.fc4, self.act6 = nn.Linear(8, 8), nn.Sigmoid()
        self.fc5, self.softmax = nn.Linear(8, 3), nn.Softmax(dim=1)

    def forward(self, x):
        h = self.gap(self.act2(self.conv2(self.pool1(self.conv1(x)))))
        h = self.act4(self.fc2(self.act3(self.fc1(torch.flatten(h, 1)))))
        h = self.act6(self.fc4(self.act5(self.fc3(h))))
        return self.softmax(self.fc5(h))


class OneConv(nn.Module):
    """Captum's BasicModel_ConvNet_One_Conv called with one input: [B,1,4,4] -> [B,4]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, 1)
        self.relu1 = nn.ReLU()
        self.fc1 = nn.Linear(8, 4)
        self.relu2 = nn.ReLU()
        with torch.no_grad():
            self.conv1.weight.copy_(torch.ones(2, 1, 3, 3))
            self.conv1.bias.copy_(torch.tensor([-50.0, -75.0]))
            self.fc1.weight.copy_(torch.cat([torch.ones(4, 5), -torch.ones(4, 3)], 1))
            self.fc1.bias.zero_()

    def forward(self, x):
        return self.relu2(self.fc1(self.relu1(self.conv1(x)).view(-1, 8)))


class LinearMaxPoolLinear(nn.Module):
    """Captum's LinearMaxPoolLinearModel: [B,4] -> [B,1]."""

    def __init__(self):
        super().__init__()
        self.lin1 = nn.Linear(4, 4, bias=False)
        self.pool1 = nn.MaxPool1d(4)
        self.lin2 = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.lin1.weight.copy_(torch.eye(4))
            self.lin2.weight.copy_(torch.ones(1, 1))

    def forward(self, x):
        return self.lin2(self.pool1(self.lin1(x.unsqueeze(1)))[:, 0, :])


class ReLUDeepLiftOneInput(nn.Module):
    """Captum's ReLUDeepLiftModel (2*relu1(x1) + 2*relu2(x2 - 1.5)) with its two
    scalar inputs as the two columns of one input [B,2] -> [B,1]."""

    def __init__(self):
        super().__init__()
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        return 2 * self.relu1(x[:, 0:1]) + 2 * self.relu2(x[:, 1:2] - 1.5)


# --------------------------------------------------------------------------
# files, export and checks
# --------------------------------------------------------------------------


def save_npy(name, tensor, role):
    arr = np.ascontiguousarray(tensor.detach().cpu().numpy())
    if arr.dtype not in (np.float32, np.int64):
        raise TypeError(f"{name}: unexpected dtype {arr.dtype}")
    np.save(OUT / name, arr, allow_pickle=False)
    WRITTEN[name] = role
    return name


def export_onnx(model, example, name, check_batches=(1, 3)):
    """Export with a dynamic batch, then check the file against PyTorch."""
    path = OUT / name
    for stale in (path, path.with_name(name + ".data")):
        stale.unlink(missing_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True,
                          dynamic_shapes=({0: batch},), verbose=False)
    WRITTEN[name] = "model"
    if path.with_name(name + ".data").exists():
        WRITTEN[name + ".data"] = "model"
    check_onnx(model, example, path, check_batches)
    record_layers(model, example, name)
    MODELS[name]["onnx_nodes"] = onnx_nodes(path)


def onnx_nodes(path):
    """Op type and module path (innermost name scope) of every exported node."""
    import ast

    import onnx

    nodes = []
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        nodes.append(f"{node.op_type} @ {'.'.join(x for x in scopes[:-1] if x) or '-'}")
    return nodes


def check_onnx(model, example, path, check_batches):
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    try:
        import onnxruntime as ort
    except ImportError:
        print(f"{path.name}: onnxruntime absent, checked with onnx.checker only")
        return
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = sess.get_inputs()[0].name
    for b in check_batches:
        torch.manual_seed(1000 + b)
        x = torch.rand((b,) + tuple(example.shape[1:])) * 2 - 0.5
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {feed: x.numpy()})[0]
        err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))
        if got.shape != ref.shape or err > ONNX_RTOL:
            raise AssertionError(f"{path.name}: onnxruntime differs at batch {b}: {err:.3g}")
        print(f"{path.name}: onnxruntime == PyTorch at batch {b} (rel. err {err:.2g})")


def record_layers(model, example, name):
    """Module paths with their types and output shapes on `example`."""
    shapes, hooks = {}, []
    for path, mod in model.named_modules():
        if path:
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, p=path: shapes.__setitem__(p, list(o.shape))))
    with torch.no_grad():
        out = model(example)
    for h in hooks:
        h.remove()
    MODELS[name] = {
        "input_shape": list(example.shape), "output_shape": list(out.shape),
        "dynamic_batch": True,
        "layers": {p: {"module": type(m).__name__, "output_shape": shapes[p]}
                   for p, m in model.named_modules() if p},
    }


# --------------------------------------------------------------------------
# inputs and models
# --------------------------------------------------------------------------


def rand(seed, shape, scale=1.0, shift=0.0):
    torch.manual_seed(seed)
    return torch.rand(shape) * scale + shift


def quadrant_mask_4x4():
    m = torch.zeros(4, 4, dtype=torch.int64)
    m[:2, 2:], m[2:, :2], m[2:, 2:] = 1, 2, 3
    return m.view(1, 1, 4, 4)


def input_quadrants():
    """The 2D classifier's input in four 4x4 quadrants, shared by its 3 channels."""
    q = torch.zeros(1, 1, 8, 8, dtype=torch.int64)
    q[..., :4, 4:], q[..., 4:, :4], q[..., 4:, 4:] = 1, 2, 3
    return q


def octant_mask_4():
    i = torch.arange(4) // 2
    m = i.view(4, 1, 1) * 4 + i.view(1, 4, 1) * 2 + i.view(1, 1, 4)
    return m.view(1, 1, 4, 4, 4).to(torch.int64)


def make_inputs():
    x_neg = torch.arange(16.0).view(1, 1, 4, 4)
    x_neg[0, 0, 1, 1] = -4.0
    t = {
        "c2d_x.npy": rand(201, (1, 3, 8, 8)),
        "c2d_x_signed.npy": rand(209, (1, 3, 8, 8), 2.0, -1.0),
        "c2d_input_quadrants.npy": input_quadrants(),
        "c2d_x2.npy": rand(202, (2, 3, 8, 8)),
        "c2d_baseline.npy": rand(203, (1, 3, 8, 8), 0.4),
        "c2d_baselines4.npy": rand(204, (4, 3, 8, 8), 0.6),
        "c2d_conv2_quadrants.npy": quadrant_mask_4x4(),
        "s3d_x.npy": rand(205, (1, 1, 8, 8, 8)),
        "s3d_x2.npy": rand(206, (2, 1, 8, 8, 8)),
        "s3d_baseline.npy": rand(207, (1, 1, 8, 8, 8), 0.4),
        "s3d_baselines4.npy": rand(208, (4, 1, 8, 8, 8), 0.6),
        "s3d_mid_octants.npy": octant_mask_4(),
        "captum_one_conv_x.npy": torch.arange(16.0).view(1, 1, 4, 4),
        "captum_one_conv_x_neg.npy": x_neg,
        "captum_lin_maxpool_x.npy": torch.ones(2, 4),
        "captum_lin_maxpool_baselines.npy": torch.tensor([[1.0, 2, 3, 9], [4, 8, 6, 7]]),
        "captum_relu_deeplift_x.npy": torch.tensor([[1.0, 2.0]]),
    }
    for name, tensor in t.items():
        save_npy(name, tensor, "mask" if tensor.dtype == torch.int64 else "input")
    return t


def make_models(t):
    torch.manual_seed(11)
    clf = Classifier2d().eval()
    with torch.no_grad():  # default init gives maps of ~1e-3; x4 per layer: ~1e-1
        for layer in (clf.conv1, clf.conv2, clf.fc):
            layer.weight.mul_(4.0)
    torch.manual_seed(13)
    rules = Rules2d().eval()
    with torch.no_grad():  # larger weights: the nonlinearities leave their linear range
        for name, p in rules.named_parameters():
            if name.endswith("weight"):
                p.mul_(3.0)
    torch.manual_seed(12)
    seg = Segmenter3d().eval()
    counts, margin = mf.balance_argmax(seg, t["s3d_x.npy"])
    print(f"segmenter3d argmax class counts {counts}, min |logit gap| {margin:.3g}")
    one_conv, lin_pool, relu_dl = OneConv().eval(), LinearMaxPoolLinear().eval(), \
        ReLUDeepLiftOneInput().eval()
    check_against_captum_helpers(one_conv, lin_pool, t)
    models = {
        "classifier2d.onnx": (clf, t["c2d_x.npy"]),
        "segmenter3d.onnx": (seg, t["s3d_x.npy"]),
        "rules2d.onnx": (rules, t["c2d_x.npy"]),
        "captum_one_conv.onnx": (one_conv, t["captum_one_conv_x.npy"]),
        "captum_lin_maxpool.onnx": (lin_pool, t["captum_lin_maxpool_x.npy"]),
        "captum_relu_deeplift.onnx": (relu_dl, t["captum_relu_deeplift_x.npy"]),
    }
    for name, (model, example) in models.items():
        export_onnx(model, example, name)
    return {name: model for name, (model, _) in models.items()}


def check_against_captum_helpers(one_conv, lin_pool, t):
    """My re-creations must equal the models of Captum's own test helpers."""
    try:
        from captum.testing.helpers import basic_models as bm
    except ImportError:
        print("captum.testing not installed: helper comparison skipped")
        return
    x = rand(300, (3, 1, 4, 4), 40, -10)
    y = rand(301, (3, 4), 10, -5)
    with torch.no_grad():
        same = (torch.equal(bm.BasicModel_ConvNet_One_Conv()(x), one_conv(x))
                and torch.equal(bm.LinearMaxPoolLinearModel()(y), lin_pool(y)))
    if not same:
        raise AssertionError("re-created toy models differ from captum.testing's")


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------


def case(name, model, inp, method, params=None, target=1, layer=None,
         wrapper=None, fixed=False, check="exact"):
    params = dict(params or {})
    baselines = params.get("baselines")
    return {
        "name": name, "model": model, "input": inp,
        "method": "captum." + method, "params": params, "target": target,
        "task": "classification" if wrapper is None else "segmentation",
        "wrapper": wrapper, "mask": None, "fixed_mask": fixed,
        "layer": layer,
        "baselines": baselines if isinstance(baselines, str) else None,
        "expected": name + ".npy", "extras": {}, "check": check, "note": "",
    }


# A composite: LRP-gamma on the first conv, LRP-alpha1-beta0 on the second, Captum's defaults
# elsewhere (esegeta's `rules` replace the defaults, so they are listed too).
LRP_COMPOSITE = [
    {"layers": ["conv1"], "rule": {"name": "gamma", "gamma": 0.25}},
    {"layers": ["conv2"], "rule": {"name": "alpha1_beta0"}},
    {"ops": ["Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool",
             "ReduceMean", "BatchNormalization"], "rule": {"name": "epsilon"}},
    {"ops": ["Relu", "Dropout", "Tanh"], "rule": {"name": "pass_through"}},
]


def captum_lrp_rules(model, composite):
    """Sets Captum rules on the modules a composite names by layer; returns a function that
    removes any left behind, so that later cases get Captum's defaults."""
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, GammaRule
    named = []
    for entry in composite:
        spec = entry["rule"]
        for layer in entry.get("layers", []):
            module = model.get_submodule(layer)
            if spec["name"] == "gamma":
                module.rule = GammaRule(gamma=spec.get("gamma", 0.25))
            elif spec["name"] == "alpha1_beta0":
                module.rule = Alpha1_Beta0_Rule()
            else:
                raise ValueError(f"no Captum rule for {spec}")
            named.append(module)

    def remove():
        for module in named:
            if hasattr(module, "rule"):
                del module.rule
    return remove


def ig_like(method, n_steps, **extra):
    return {"n_steps": n_steps, "method": method, **extra}


def shap(baselines, stdevs, **extra):
    return {"baselines": baselines, "n_samples": SHAP_SAMPLES, "stdevs": stdevs, **extra}


def classifier_cases():
    m, x, x2 = "classifier2d.onnx", "c2d_x.npy", "c2d_x2.npy"
    b1, b4 = "c2d_baseline.npy", "c2d_baselines4.npy"
    c = lambda n, *a, **k: case("c2d_" + n, m, *a, **k)  # noqa: E731
    return [
        c("guided_backprop", x, "guided_backprop"),
        c("guided_backprop_b2", x2, "guided_backprop", target=2),
        c("deconvolution", x, "deconvolution"),
        c("deconvolution_b2", x2, "deconvolution", target=2),
        c("deeplift_zero", x, "deeplift"),
        c("deeplift_baseline_b2", x2, "deeplift", {"baselines": b1}, target=2),
        c("deeplift_baseline_nomul", x, "deeplift",
          {"baselines": b1, "multiply_by_inputs": False}),
        c("deeplift_shap", x2, "deeplift_shap", {"baselines": b4}),
        c("deeplift_shap_nomul", x, "deeplift_shap",
          {"baselines": b4, "multiply_by_inputs": False}, target=2),
        c("gradient_shap", x, "gradient_shap", shap(b4, 0.1), check="statistical"),
        c("gradient_shap_nonoise_b2", x2, "gradient_shap", shap(b4, 0.0), target=2,
          check="statistical"),
        c("guided_grad_cam_conv2", x, "guided_grad_cam", layer="conv2"),
        c("guided_grad_cam_act1_b2", x2, "guided_grad_cam", target=0, layer="act1"),
        c("lrp", x, "lrp"),
        c("lrp_b2", x2, "lrp", target=2),
        c("lrp_gamma_alpha1_beta0", x2, "lrp", {"rules": LRP_COMPOSITE}),
        c("layer_grad_cam_conv2", x, "layer_grad_cam", layer="conv2"),
        c("layer_grad_cam_act2_relu_b2", x2, "layer_grad_cam",
          {"relu_attributions": True}, target=0, layer="act2"),
        c("layer_grad_cam_conv1_nosum", x, "layer_grad_cam",
          {"attr_dim_summation": False}, target=0, layer="conv1"),
        c("layer_activation_conv2", x, "layer_activation", target=None, layer="conv2"),
        c("layer_activation_act1_b2", x2, "layer_activation", target=None, layer="act1"),
        c("layer_activation_pool1_input", x, "layer_activation",
          {"attribute_to_layer_input": True}, target=None, layer="pool1"),
        c("layer_gradient_x_activation_conv2", x, "layer_gradient_x_activation",
          layer="conv2"),
        c("layer_gradient_x_activation_act1_nomul_b2", x2,
          "layer_gradient_x_activation", {"multiply_by_inputs": False}, target=2,
          layer="act1"),
        c("layer_conductance_conv2", x, "layer_conductance", layer="conv2"),
        c("layer_conductance_act1_trapezoid_b2", x2, "layer_conductance",
          ig_like("riemann_trapezoid", 20, baselines=b1), target=2, layer="act1"),
        c("internal_influence_conv2", x, "internal_influence", layer="conv2"),
        c("internal_influence_act1_left_b2", x2, "internal_influence",
          ig_like("riemann_left", 20, baselines=b1), target=2, layer="act1"),
        c("layer_integrated_gradients_conv2", x, "layer_integrated_gradients",
          layer="conv2"),
        c("layer_integrated_gradients_act1_trapezoid_b2", x2,
          "layer_integrated_gradients", ig_like("riemann_trapezoid", 30, baselines=b1),
          target=2, layer="act1"),
        c("layer_integrated_gradients_conv2_input", x, "layer_integrated_gradients",
          {"attribute_to_layer_input": True, "baselines": b1}, layer="conv2"),
        c("layer_integrated_gradients_conv2_nomul", x, "layer_integrated_gradients",
          {"multiply_by_inputs": False, "n_steps": 20}, target=0, layer="conv2"),
        c("layer_deeplift_conv2", x, "layer_deeplift", layer="conv2"),
        c("layer_deeplift_act1_b2", x2, "layer_deeplift", {"baselines": b1}, target=2,
          layer="act1"),
        c("layer_deeplift_conv2_input_nomul", x, "layer_deeplift",
          {"baselines": b1, "attribute_to_layer_input": True,
           "multiply_by_inputs": False}, layer="conv2"),
        c("layer_deeplift_shap_conv2", x2, "layer_deeplift_shap", {"baselines": b4},
          layer="conv2"),
        c("layer_gradient_shap_conv2", x, "layer_gradient_shap", shap(b4, 0.1),
          layer="conv2", check="statistical"),
        c("layer_feature_ablation_conv2", x, "layer_feature_ablation", layer="conv2"),
        c("layer_feature_ablation_conv2_mask_b2", x2, "layer_feature_ablation",
          {"layer_mask": "c2d_conv2_quadrants.npy", "layer_baselines": 0.1,
           "perturbations_per_eval": 2}, target=2, layer="conv2"),
    ]


def cnnvis_cases():
    """The cnnvis plugin against pytorch-grad-cam 1.5.7 (its ScoreCAM takes 2D layers only)."""
    m, x, x2 = "classifier2d.onnx", "c2d_x.npy", "c2d_x2.npy"
    s, sx = "segmenter3d.onnx", "s3d_x.npy"

    def c(name, model, inp, method, params=None, **k):
        return {**case(name, model, inp, "", params, **k), "method": "cnnvis." + method}

    cases = [
        c("c2d_score_cam_conv2", m, x, "score_cam", layer="conv2"),
        c("c2d_score_cam_act1_b2", m, x2, "score_cam", {"perturbations_per_eval": 3},
          target=2, layer="act1"),
    ]
    for method in GRADIENT_CAMS:
        cases += [
            c(f"c2d_{method}_conv2", m, x, method, layer="conv2"),
            c(f"c2d_{method}_act1_b2", m, x2, method, target=2, layer="act1"),
            c(f"s3d_argmax_{method}_mid", s, sx, method, target=0, layer="mid",
              wrapper="argmax", fixed=True),
        ]
    return cases


def layer_lrp_cases():
    """Captum's LayerLRP with its default rules (it has none for Conv3d: 2D only)."""
    m, x, x2 = "classifier2d.onnx", "c2d_x.npy", "c2d_x2.npy"
    return [
        case("c2d_layer_lrp_conv2", m, x, "layer_lrp", layer="conv2"),
        case("c2d_layer_lrp_conv2_input_b2", m, x2, "layer_lrp",
             {"attribute_to_layer_input": True}, target=2, layer="conv2"),
        case("c2d_layer_lrp_pool1", m, x, "layer_lrp", target=0, layer="pool1"),
    ]


def neuron_cases():
    """Captum's neuron methods: one neuron of a layer explained instead of a target."""
    m, x, x2 = "classifier2d.onnx", "c2d_x.npy", "c2d_x2.npy"
    s, sx = "segmenter3d.onnx", "s3d_x.npy"
    conv2 = {"neuron_selector": [5, 1, 2]}
    return [
        case("c2d_neuron_gradient_conv2", m, x, "neuron_gradient", conv2, target=None,
             layer="conv2"),
        case("c2d_neuron_gradient_fc_b2", m, x2, "neuron_gradient", {"neuron_selector": 2},
             target=None, layer="fc"),
        case("c2d_neuron_integrated_gradients_conv2", m, x, "neuron_integrated_gradients",
             {**conv2, "n_steps": 20}, target=None, layer="conv2"),
        case("c2d_neuron_integrated_gradients_conv1_trapezoid_nomul_b2", m, x2,
             "neuron_integrated_gradients",
             {"neuron_selector": [1, 3, 4], "n_steps": 16, "method": "riemann_trapezoid",
              "baselines": 0.1, "multiply_by_inputs": False}, target=None, layer="conv1"),
        case("c2d_neuron_feature_ablation_conv2_quadrants", m, x, "neuron_feature_ablation",
             {**conv2, "feature_mask": "c2d_input_quadrants.npy", "baselines": 0.2},
             target=None, layer="conv2"),
        case("s3d_argmax_neuron_integrated_gradients_mid", s, sx, "neuron_integrated_gradients",
             {"neuron_selector": [3, 2, 1, 2], "n_steps": 12}, target=None, layer="mid",
             wrapper="argmax", fixed=True),
        case("s3d_argmax_neuron_feature_ablation_mid", s, sx, "neuron_feature_ablation",
             {"neuron_selector": [3, 2, 1, 2]}, target=None, layer="mid", wrapper="argmax",
             fixed=True),
        case("c2d_neuron_conductance_conv2", m, x, "neuron_conductance",
             {**conv2, "n_steps": 20}, layer="conv2"),
        case("c2d_neuron_conductance_conv2_gausslegendre_b2", m, x2, "neuron_conductance",
             {"neuron_selector": [0, 0, 0], "n_steps": 12, "method": "gausslegendre",
              "baselines": 0.1}, target=2, layer="conv2"),
        case("s3d_argmax_neuron_conductance_mid", s, sx, "neuron_conductance",
             {"neuron_selector": [3, 2, 1, 2], "n_steps": 10}, target=0, layer="mid",
             wrapper="argmax", fixed=True),
        case("c2d_neuron_gradient_shap_conv2", m, x, "neuron_gradient_shap",
             {**conv2, **shap("c2d_baselines4.npy", 0.1)}, target=None, layer="conv2",
             check="statistical"),
    ]


def zennit_cases():
    """captum.lrp with zennit's rules (alpha_beta, z_plus, z_box), against zennit 0.5.1's own
    attribution with the same rule on every module (Captum has none of these rules)."""
    relu = {"ops": ["Relu"], "rule": {"name": "pass_through"}}

    def rule(layers, name, **params):
        return {"layers": layers, "rule": {"name": name, **params}}

    def c(name, model, inp, rules, **k):
        return {**case(name, model, inp, "lrp", {"rules": rules}, **k), "reference": "zennit"}

    head = [rule(["fc"], "epsilon", epsilon=1e-6), rule(["gap"], "epsilon", epsilon=1e-6), relu]
    return [
        c("c2d_lrp_zbox_alpha2_beta1", "classifier2d.onnx", "c2d_x.npy",
          [rule(["conv1"], "z_box", low=0.0, high=1.0),
           rule(["conv2"], "alpha_beta", alpha=2.0, beta=1.0)] + head),
        c("c2d_lrp_z_plus_signed_input", "classifier2d.onnx", "c2d_x_signed.npy",
          [rule(["conv1", "conv2"], "z_plus")] + head, target=2),
        c("s3d_argmax_lrp_zbox_alpha2_beta1", "segmenter3d.onnx", "s3d_x.npy",
          [rule(["enc"], "z_box", low=0.0, high=1.0),
           rule(["mid"], "alpha_beta", alpha=2.0, beta=1.0),
           rule(["head"], "epsilon", epsilon=1e-6), relu],
          target=0, wrapper="argmax", fixed=True),
    ]


def rules_cases():
    m, x, x2 = "rules2d.onnx", "c2d_x.npy", "c2d_x2.npy"
    b1, b4 = "c2d_baseline.npy", "c2d_baselines4.npy"
    return [
        case("rules2d_deeplift_b2", m, x2, "deeplift", {"baselines": b1}),
        case("rules2d_deeplift_zero_target2", m, x, "deeplift", target=2),
        case("rules2d_deeplift_shap", m, x, "deeplift_shap", {"baselines": b4}, target=0),
        case("rules2d_layer_deeplift_fc1", m, x2, "layer_deeplift", {"baselines": b1},
             target=2, layer="fc1"),
    ]


def segmenter_cases():
    m, x, x2 = "segmenter3d.onnx", "s3d_x.npy", "s3d_x2.npy"
    b1, b4 = "s3d_baseline.npy", "s3d_baselines4.npy"

    def c(n, *a, fixed=False, **k):
        return case("s3d_argmax_" + n + ("_fixed" if fixed else ""), m, *a,
                    wrapper="argmax", fixed=fixed, **k)

    return [
        c("guided_backprop", x, "guided_backprop"),
        c("guided_backprop_b2", x2, "guided_backprop", target=0),
        c("deconvolution", x, "deconvolution", target=0),
        c("deeplift_zero", x, "deeplift", fixed=True),
        c("deeplift_baseline", x, "deeplift", {"baselines": b1}, target=0, fixed=True),
        c("deeplift_baseline_nomul", x, "deeplift",
          {"baselines": b1, "multiply_by_inputs": False}, fixed=True),
        c("deeplift_shap", x, "deeplift_shap", {"baselines": b4}, fixed=True),
        c("gradient_shap", x, "gradient_shap", shap(b4, 0.1), fixed=True,
          check="statistical"),
        c("guided_grad_cam_mid", x, "guided_grad_cam", layer="mid"),
        c("layer_grad_cam_mid", x, "layer_grad_cam", layer="mid"),
        c("layer_grad_cam_enc_act_relu", x, "layer_grad_cam",
          {"relu_attributions": True}, target=0, layer="enc_act"),
        c("layer_grad_cam_up_relu_b2", x2, "layer_grad_cam",
          {"relu_attributions": True}, target=0, layer="up"),
        c("layer_activation_mid_act", x, "layer_activation", target=None,
          layer="mid_act"),
        c("layer_gradient_x_activation_enc", x, "layer_gradient_x_activation",
          layer="enc"),
        c("layer_conductance_mid", x, "layer_conductance",
          ig_like("gausslegendre", 32), layer="mid", fixed=True),
        c("internal_influence_mid", x, "internal_influence",
          ig_like("gausslegendre", 32), target=0, layer="mid", fixed=True),
        c("layer_integrated_gradients_mid", x, "layer_integrated_gradients",
          ig_like("gausslegendre", 32, baselines=b1), layer="mid", fixed=True),
        c("layer_integrated_gradients_enc_act", x, "layer_integrated_gradients",
          ig_like("riemann_trapezoid", 32), target=0, layer="enc_act", fixed=True),
        c("layer_deeplift_mid", x, "layer_deeplift", {"baselines": b1}, layer="mid",
          fixed=True),
        c("layer_deeplift_shap_mid", x, "layer_deeplift_shap", {"baselines": b4},
          target=0, layer="mid", fixed=True),
        c("layer_gradient_shap_mid", x, "layer_gradient_shap", shap(b4, 0.1),
          layer="mid", fixed=True, check="statistical"),
        c("layer_feature_ablation_mid", x, "layer_feature_ablation", layer="mid",
          fixed=True),
        c("layer_feature_ablation_mid_mask", x, "layer_feature_ablation",
          {"layer_mask": "s3d_mid_octants.npy", "layer_baselines": -0.2}, target=0,
          layer="mid", fixed=True),
    ]


# Values published in Captum's own test suite (pytorch/captum, tests/attr/...).
ONE_CONV_GB = [[0.0, 1, 1, 1], [1, 3, 3, 2], [1, 3, 3, 2], [1, 2, 2, 1]]
ONE_CONV_DECONV = [[2.0, 3, 3, 1], [3, 5, 5, 2], [3, 5, 5, 2], [1, 2, 2, 1]]
X_NEG_CAM = [[0.0, 1, 2, 3], [4, -4, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
PUBLISHED = {
    "captum_one_conv_guided_backprop": (
        "test_guided_backprop.py test_simple_input_conv_gb", [[ONE_CONV_GB]]),
    "captum_one_conv_deconvolution": (
        "test_deconvolution.py test_simple_input_conv_deconv", [[ONE_CONV_DECONV]]),
    "captum_one_conv_layer_grad_cam_conv1": (
        "layer/test_grad_cam.py test_simple_input_conv", [[[[11.25, 13.5], [20.25, 22.5]]]]),
    "captum_one_conv_layer_grad_cam_relu1": (
        "layer/test_grad_cam.py test_simple_input_conv_relu", [[[[0.0, 4.0], [28.0, 32.5]]]]),
    "captum_one_conv_layer_grad_cam_conv1_nosum": (
        "layer/test_grad_cam.py test_simple_input_conv_split_channels",
        [[[[-3.75, 3.0], [23.25, 30.0]], [[15.0, 10.5], [-3.0, -7.5]]]]),
    "captum_one_conv_layer_grad_cam_conv1_input": (
        "layer/test_grad_cam.py test_simple_input_conv_without_final_relu",
        [[[[0.5625 * v for v in row] for row in X_NEG_CAM]]]),
    "captum_one_conv_layer_grad_cam_conv1_input_relu": (
        "layer/test_grad_cam.py test_simple_input_conv_fc_with_final_relu",
        [[[[max(0.5625 * v, 0.0) for v in row] for row in X_NEG_CAM]]]),
    "captum_lin_maxpool_deeplift": (
        "test_deeplift_basic.py test_lin_maxpool_lin_classification",
        [[0.0, 0.0, 0.0, -8.0], [0.0, -7.0, 0.0, 0.0]]),
    "captum_relu_deeplift": (
        "test_deeplift_basic.py test_relu_deeplift_exact_match (x1, x2 as columns)",
        [[2.0, 1.0]]),
    "captum_relu_deeplift_nomul": (
        "test_deeplift_basic.py test_relu_deeplift_exact_match_wo_mutliplying_by_inputs",
        [[2.0, 0.5]]),
}
PUBLISHED_DELTA = {"captum_lin_maxpool_deeplift": [0.0, 0.0], "captum_relu_deeplift": [0.0]}


def published_cases():
    oc, x, xn = "captum_one_conv.onnx", "captum_one_conv_x.npy", "captum_one_conv_x_neg.npy"
    cam = "layer_grad_cam"
    return [
        case("captum_one_conv_guided_backprop", oc, x, "guided_backprop", target=0),
        case("captum_one_conv_deconvolution", oc, x, "deconvolution", target=0),
        case("captum_one_conv_layer_grad_cam_conv1", oc, x, cam, target=0, layer="conv1"),
        case("captum_one_conv_layer_grad_cam_relu1", oc, x, cam, target=0, layer="relu1"),
        case("captum_one_conv_layer_grad_cam_conv1_nosum", oc, x, cam,
             {"attr_dim_summation": False}, target=0, layer="conv1"),
        case("captum_one_conv_layer_grad_cam_conv1_input", oc, xn, cam,
             {"attribute_to_layer_input": True}, target=0, layer="conv1"),
        case("captum_one_conv_layer_grad_cam_conv1_input_relu", oc, xn, cam,
             {"attribute_to_layer_input": True, "relu_attributions": True}, target=0,
             layer="conv1"),
        case("captum_lin_maxpool_deeplift", "captum_lin_maxpool.onnx",
             "captum_lin_maxpool_x.npy", "deeplift",
             {"baselines": "captum_lin_maxpool_baselines.npy"}, target=0),
        case("captum_relu_deeplift", "captum_relu_deeplift.onnx",
             "captum_relu_deeplift_x.npy", "deeplift", target=0),
        case("captum_relu_deeplift_nomul", "captum_relu_deeplift.onnx",
             "captum_relu_deeplift_x.npy", "deeplift", {"multiply_by_inputs": False},
             target=0),
    ]


# --------------------------------------------------------------------------
# running Captum
# --------------------------------------------------------------------------

METHODS = {
    "captum.guided_backprop": GuidedBackprop,
    "captum.deconvolution": Deconvolution,
    "captum.deeplift": DeepLift,
    "captum.deeplift_shap": DeepLiftShap,
    "captum.gradient_shap": GradientShap,
    "captum.guided_grad_cam": GuidedGradCam,
    "captum.lrp": LRP,
    "captum.layer_grad_cam": LayerGradCam,
    "captum.layer_activation": LayerActivation,
    "captum.layer_gradient_x_activation": LayerGradientXActivation,
    "captum.layer_conductance": LayerConductance,
    "captum.internal_influence": InternalInfluence,
    "captum.layer_integrated_gradients": LayerIntegratedGradients,
    "captum.layer_deeplift": LayerDeepLift,
    "captum.layer_deeplift_shap": LayerDeepLiftShap,
    "captum.layer_gradient_shap": LayerGradientShap,
    "captum.layer_feature_ablation": LayerFeatureAblation,
    "captum.layer_lrp": LayerLRP,
    "captum.neuron_gradient": NeuronGradient,
    "captum.neuron_gradient_shap": NeuronGradientShap,
    "captum.neuron_conductance": NeuronConductance,
    "captum.neuron_integrated_gradients": NeuronIntegratedGradients,
    "captum.neuron_feature_ablation": NeuronFeatureAblation,
}
CONSTRUCTOR_PARAMS = ("multiply_by_inputs", "eps")
NO_TARGET = ("captum.layer_activation", "captum.neuron_gradient",
             "captum.neuron_integrated_gradients", "captum.neuron_feature_ablation",
             "captum.neuron_gradient_shap")
# Methods whose convergence delta is recorded (only where it means something:
# with multiply_by_inputs on, and not for sampled methods).
WITH_DELTA = ("captum.deeplift", "captum.deeplift_shap", "captum.lrp", "captum.layer_lrp",
              "captum.layer_conductance", "captum.layer_integrated_gradients",
              "captum.layer_deeplift", "captum.layer_deeplift_shap")


def forward_fn(c, models, tensors):
    model = models[c["model"]]
    if c["wrapper"] == "argmax":
        return mf.ArgmaxScores(model, tensors[c["input"]] if c["fixed_mask"] else None)
    if c["wrapper"] is not None:
        raise ValueError(f"{c['name']}: wrapper {c['wrapper']} not used here")
    return model


def split_params(c, tensors):
    """JSON params -> (constructor kwargs, attribute kwargs) with files as tensors."""
    ctor, kwargs = {}, {}
    for key, value in c["params"].items():
        if isinstance(value, str) and value.endswith(".npy"):
            value = tensors[value]
        if key == "neuron_selector" and isinstance(value, list):
            value = tuple(value)  # Captum takes an index tuple, not a list
        (ctor if key in CONSTRUCTOR_PARAMS else kwargs)[key] = value
    return ctor, kwargs


def wants_delta(c):
    return (c["method"] in WITH_DELTA and c["check"] == "exact"
            and c["params"].get("multiply_by_inputs", True))


def attribute(c, models, tensors, seed):
    """One Captum call; returns (attribution, convergence delta or None)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    if c["method"] == "cnnvis.score_cam":
        return score_cam(models[c["model"]], c["layer"], tensors[c["input"]], c["target"],
                         c["params"]), None
    fn = forward_fn(c, models, tensors)
    if c["method"].startswith("cnnvis."):
        module = models[c["model"]].get_submodule(c["layer"])
        return gradient_cam(c, module, fn, tensors[c["input"]]), None
    if c.get("reference") == "zennit":
        return zennit_lrp(c, models[c["model"]], fn, tensors[c["input"]]), None
    ctor, kwargs = split_params(c, tensors)
    remove_rules = captum_lrp_rules(models[c["model"]], kwargs.pop("rules", []))
    cls = METHODS[c["method"]]
    if c["layer"] is not None:
        algo = cls(fn, models[c["model"]].get_submodule(c["layer"]), **ctor)
    else:
        algo = cls(fn, **ctor)
    if c["method"] not in NO_TARGET:
        kwargs["target"] = c["target"]
    try:
        if wants_delta(c):
            attr, delta = algo.attribute(tensors[c["input"]], return_convergence_delta=True,
                                         **kwargs)
            return attr, delta
        return algo.attribute(tensors[c["input"]], **kwargs), None
    finally:
        remove_rules()


def seed_spread(c, models, tensors, expected):
    devs = []
    for k in range(SEED_SPREAD_RUNS):
        attr, _ = attribute(c, models, tensors, name_seed(c["name"]) + 1 + k)
        devs.append(float((attr - expected).abs().max()))
    return {"captum_other_seeds_max_abs_dev": max(devs),
            "captum_other_seeds_runs": SEED_SPREAD_RUNS,
            "expected_max_abs": float(expected.abs().max())}


def name_seed(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def describe(c):
    if c.get("reference") == "zennit":
        return ("zennit 0.5.1 Gradient attributor, NameMapComposite of the case's rules, "
                "attr_output = one-hot(target) * output")
    if c["method"].startswith("cnnvis."):
        method = c["method"].removeprefix("cnnvis.")
        cls = "ScoreCAM" if method == "score_cam" else GRADIENT_CAMS[method]
        f = "model" if c["wrapper"] is None else f"{c['wrapper']}_wrapper(model)"
        return (f"np.maximum(pytorch_grad_cam.{cls}({f}, [model.{c['layer']}])"
                f".get_cam_image(x, ..., [ClassifierOutputTarget({c['target']})], "
                f"activations, gradients), 0)")
    cls = METHODS[c["method"]].__name__
    ctor = "".join(f", {k}={v!r}" for k, v in c["params"].items()
                   if k in CONSTRUCTOR_PARAMS)
    layer = f", model.{c['layer']}" if c["layer"] else ""
    args = "".join(f", {k}={v!r}" for k, v in c["params"].items()
                   if k not in CONSTRUCTOR_PARAMS)
    tgt = "" if c["method"] in NO_TARGET else f", target={c['target']}"
    f = c["model"] if c["wrapper"] is None else f"{c['wrapper']}_wrapper({c['model']})"
    mask = ""
    if c["wrapper"]:
        mask = (" [fixed mask: computed once on the unperturbed input]" if c["fixed_mask"]
                else " [dynamic mask: recomputed on every forward]")
    return f"{cls}(f{layer}{ctor}).attribute(x{tgt}{args}) with f = {f}{mask}"


def build_case(c, models, tensors):
    c["note"] = describe(c)
    attr, delta = attribute(c, models, tensors, name_seed(c["name"]))
    attr = attr.detach().to(torch.float32)
    if not torch.isfinite(attr).all():
        raise AssertionError(f"{c['name']}: non-finite attribution")
    if delta is not None:
        c["extras"]["convergence_delta"] = delta.detach().flatten().tolist()
    if c["check"] == "statistical":
        c["extras"].update(seed_spread(c, models, tensors, attr))
    if c["name"] in PUBLISHED:
        attr = check_published(c, attr)
    if float(attr.abs().max()) == 0.0:
        raise AssertionError(f"{c['name']}: all-zero attribution tests nothing")
    save_npy(c["expected"], attr, "expected")
    return c


def check_published(c, attr):
    """Captum must reproduce its published values; the fixture holds them."""
    source, values = PUBLISHED[c["name"]]
    published = torch.tensor(values, dtype=torch.float32)
    if attr.shape != published.shape or not torch.allclose(attr, published, atol=1e-4,
                                                           rtol=0):
        raise AssertionError(f"{c['name']}: Captum {attr.tolist()} misses published {values}")
    if c["name"] in PUBLISHED_DELTA:
        got = c["extras"]["convergence_delta"]
        if not np.allclose(got, PUBLISHED_DELTA[c["name"]], atol=1e-4):
            raise AssertionError(f"{c['name']}: delta {got} misses published")
    c["note"] += f"; equals the values published in captum tests/attr/{source}"
    return published


# --------------------------------------------------------------------------
# checks that document Captum quirks the Rust side must reproduce
# --------------------------------------------------------------------------


def check_maxpool_rule_bypass(models, tensors):
    """Captum's DeepLift max-pool rule has no effect after a hooked ReLU (see the
    spec): removing MaxPool2d/3d from its rule table must not change those cases,
    and must change rules2d (conv -> max-pool), the control."""
    import captum.attr._core.deep_lift as dl

    names = {"c2d_deeplift_baseline_b2": False, "s3d_argmax_deeplift_baseline_fixed": False,
             "rules2d_deeplift_b2": True}
    cases = [c for c in all_cases() if c["name"] in names]
    before = [attribute(c, models, tensors, 0)[0] for c in cases]
    saved = {k: dl.SUPPORTED_NON_LINEAR.pop(k) for k in (nn.MaxPool2d, nn.MaxPool3d)}
    try:
        after = [attribute(c, models, tensors, 0)[0] for c in cases]
    finally:
        dl.SUPPORTED_NON_LINEAR.update(saved)
    for c, a, b in zip(cases, before, after):
        rel = float((a - b).abs().max() / a.abs().max())
        print(f"{c['name']}: max|with pool rule - without| / max|map| = {rel:.3g}")
        if (rel > 1e-6) != names[c["name"]]:
            raise AssertionError(f"{c['name']}: the max-pool rule's effect is not as expected")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def all_cases():
    return (classifier_cases() + rules_cases() + segmenter_cases() + published_cases()
            + cnnvis_cases() + zennit_cases() + neuron_cases() + layer_lrp_cases())


def write_json(cases):
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    (OUT / "models.json").write_text(json.dumps(MODELS, indent=1) + "\n")
    WRITTEN["cases.json"] = WRITTEN["models.json"] = "index"


def print_table(cases):
    print(f"\n{'case':58s} {'method':36s} {'layer':8s} {'check':11s} "
          f"{'shape':18s} max|map|")
    for c in cases:
        arr = np.load(OUT / c["expected"])
        print(f"{c['name']:58s} {c['method']:36s} {str(c['layer']):8s} {c['check']:11s} "
              f"{str(tuple(arr.shape)):18s} {np.abs(arr).max():.6g}")
    total = sum((OUT / n).stat().st_size for n in WRITTEN)
    print(f"\n{len(cases)} cases, {len(WRITTEN)} files, {total} bytes in total")
    if total > SIZE_LIMIT:
        raise AssertionError("layer fixtures exceed 3 MB")
    stray = sorted(p.name for p in OUT.iterdir() if p.name not in WRITTEN)
    if stray:
        print("files in tests/fixtures/layers not written by this script:", stray)


def main():
    warnings.filterwarnings("ignore")
    mf.setup_determinism()
    OUT.mkdir(parents=True, exist_ok=True)
    tensors = make_inputs()
    models = make_models(tensors)
    cases = [build_case(c, models, tensors) for c in all_cases()]
    check_maxpool_rule_bypass(models, tensors)
    write_json(cases)
    print_table(cases)
    print(f"argmax: {mf.ARGMAX_STATS['calls']} masks, smallest top-2 logit gap "
          f"{mf.ARGMAX_STATS['min_gap']:.3g}")


if __name__ == "__main__":
    main()
