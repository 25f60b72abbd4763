"""Build the ONNX fixtures of esegeta's importer tests, and the vessel models' ONNX files.

What it does
------------
Defines small PyTorch models that together cover the ops PyTorch 2.13's exporter writes for
CNNs and UNets (1D/2D/3D), exports each with ``torch.onnx.export(..., dynamo=True)`` (dynamic
batch unless stated) into ``tests/fixtures/onnx/``, and writes for each:

* ``<name>.onnx`` (+ ``.onnx.data``)  the model
* ``<name>_x<B>.npy``                inputs for batch sizes 1 and 3
* ``<name>_x<B>_out<k>.npy``         PyTorch's output k for that input
* ``manifest.json``                  models, inputs, outputs, fixed/dynamic batch, the module
                                     paths PyTorch enters during forward (the expected layer
                                     names, in order), a forward-hook reference and a gradient
                                     reference

plus ``unsupported_einsum.onnx`` (an Einsum node, made with onnx.helper) and
``corrupt.onnx`` (not a protobuf) for the error tests. It also exports the trained vessel
models (tools/train_vessels.py; weights from configs/vessels/models/*.pt) to
``configs/vessels/models/*.onnx``, checking onnxruntime-free: the ONNX graph is re-run with
the ``onnx`` reference evaluator and compared to PyTorch.

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install onnx onnxscript   # once
    ~/.cache/esegeta/venv/bin/python tools/make_onnx_fixtures.py

Seeded, float32, CPU, one thread.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from make_fixtures import Classifier2d, Segmenter3d  # noqa: E402
import train_vessels as tv  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "onnx"
FIXTURES = ROOT / "tests" / "fixtures"
VESSELS = ROOT / "configs" / "vessels" / "models"
FOLDER_LIMIT = 3 * 1024 * 1024
# Modules the exporter leaves no node for (identity at inference).
NODELESS = (nn.Dropout, nn.Identity)


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNetLike(nn.Module):
    """ResNet-18's layout (7x7 stem, max-pool, 4 stages of 2 basic blocks, GAP, fc), tiny widths."""

    def __init__(self, widths=(4, 8, 8, 16), classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class UNetNearest(nn.Module):
    """3D UNet: max-pool down, nearest upsample, batch norm, ReLU."""

    def __init__(self, c=3):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv3d(1, c, 3, padding=1), nn.BatchNorm3d(c), nn.ReLU())
        self.pool = nn.MaxPool3d(2)
        self.mid = nn.Sequential(nn.Conv3d(c, 2 * c, 3, padding=1), nn.BatchNorm3d(2 * c), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = nn.Sequential(nn.Conv3d(3 * c, c, 3, padding=1), nn.BatchNorm3d(c), nn.ReLU())
        self.head = nn.Conv3d(c, 2, 1)

    def forward(self, x):
        e = self.enc(x)
        m = self.up(self.mid(self.pool(e)))
        return self.head(self.dec(torch.cat([m, e], 1)))


class UNetStrided(nn.Module):
    """3D UNet: strided-conv down, transposed-conv up, instance norm, LeakyReLU, trilinear
    skip resize with align_corners=True."""

    def __init__(self, c=3):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv3d(1, c, 3, padding=1), nn.InstanceNorm3d(c, affine=True),
                                 nn.LeakyReLU(0.1))
        self.down = nn.Sequential(nn.Conv3d(c, 2 * c, 3, stride=2, padding=1),
                                  nn.InstanceNorm3d(2 * c, affine=True), nn.LeakyReLU(0.01))
        self.up = nn.ConvTranspose3d(2 * c, c, 2, stride=2)
        self.side = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=True)
        self.side_conv = nn.Conv3d(2 * c, c, 1)
        self.head = nn.Conv3d(3 * c, 2, 1)

    def forward(self, x):
        e = self.enc(x)
        d = self.down(e)
        side = self.side_conv(self.side(d))
        return self.head(torch.cat([self.up(d), e, side], 1))


class DeepSupervision(nn.Module):
    """UNetMSS (tools/train_vessels.py) at width 2: three outputs (full, 1/2, 1/4)."""

    def __init__(self):
        super().__init__()
        self.net = tv.UNetMSS(c=2)

    def forward(self, x):
        return self.net(x)


class LessCommon(nn.Module):
    """The less common ops: ELU, PReLU, GELU (both forms), Softplus, Tanh, Sigmoid, Softmax,
    LogSoftmax, AvgPool (count_include_pad both ways, ceil_mode), MaxPool with ceil_mode and
    dilation, GroupNorm, LayerNorm, Pad (reflect, replicate, constant), Clip, 1D convs (dilated,
    grouped), a transposed conv with output_padding, Split, Where, bilinear resize, Hardswish."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.prelu = nn.PReLU(6)
        self.elu = nn.ELU(0.7)
        self.gn = nn.GroupNorm(3, 6)
        self.pool_ceil = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.pool_dil = nn.MaxPool2d(2, 1, dilation=2)
        self.avg_incl = nn.AvgPool2d(3, 2, padding=1, count_include_pad=True)
        self.avg_excl = nn.AvgPool2d(3, 2, padding=1, count_include_pad=False, ceil_mode=True)
        self.conv1d = nn.Conv1d(6, 6, 3, padding=2, dilation=2, groups=3)
        self.ln = nn.LayerNorm(6)
        self.tconv = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        h = self.elu(self.prelu(self.conv(x)))                         # [B,6,9,9]
        h = self.gn(F.gelu(h))
        a = self.pool_ceil(F.pad(h, (1, 1, 1, 1), mode="reflect"))      # [B,6,6,6]
        b = self.pool_dil(F.pad(h, (0, 1, 0, 1), mode="replicate"))     # [B,6,8,8]
        c = self.avg_incl(h) + self.avg_excl(h)                         # [B,6,5,5]
        b = F.interpolate(b, size=(5, 5), mode="bilinear", align_corners=False)
        a = F.interpolate(a, scale_factor=0.8, mode="nearest")          # -> 4x4, then resize
        a = F.interpolate(a, size=(5, 5), mode="bilinear", align_corners=True)
        h = torch.tanh(a) + torch.sigmoid(b) + F.softplus(c) + F.hardswish(c)
        h = torch.clamp(h, -0.5, 2.5)
        p, q = torch.split(h, [2, 4], dim=1)
        p = torch.where(p > 1.0, p, F.gelu(p, approximate="tanh"))
        h = torch.cat([q, p], 1)                                        # [B,6,5,5]
        seq = self.conv1d(h.flatten(2))                                 # [B,6,25]
        seq = self.ln(seq.transpose(1, 2)).transpose(1, 2)
        t = self.tconv(h)                                               # [B,4,10,10]
        t = F.pad(t, (1, 0, 2, 1), value=0.25)
        pooled = torch.cat([t.mean((2, 3)), seq.amax(2), seq.amin(2).abs().sqrt()], 1)[:, :12]
        logits = self.fc(pooled)
        return torch.cat([F.softmax(logits, 1), F.log_softmax(logits, 1)], 1)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def randomise_norms(model, seed):
    """Non-trivial norm statistics and affine parameters, so the test can tell them apart."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm3d, nn.GroupNorm,
                              nn.LayerNorm)) and getattr(m, "weight", None) is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def export(model, example, path, dynamic=True, optimize=True):
    kwargs = {"dynamic_shapes": ({0: torch.export.Dim("batch", min=1, max=1024)},)} if dynamic else {}
    kwargs["optimize"] = optimize
    for p in (path, path.with_name(path.name + ".data")):
        p.unlink(missing_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["x"], **kwargs)


def entered_modules(model, x):
    """Module paths in the order forward enters them (the expected layer list)."""
    order = []
    handles = [m.register_forward_pre_hook(lambda mod, args, name=name: order.append(name))
               for name, m in model.named_modules() if name and not isinstance(m, NODELESS)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    seen, unique = set(), []
    for name in order:
        if name not in seen:
            seen.add(name)
            unique.append(name)
    return unique


def outputs_of(model, x):
    with torch.no_grad():
        out = model(x)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def save(name, array):
    np.save(OUT / name, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return name


def zero_hook_reference(model, layer, x, name):
    """PyTorch's output 0 when a forward hook replaces `layer`'s output with zeros."""
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    out = outputs_of(model, x)[0]
    handle.remove()
    return {"layer": layer, "input": f"{name}_x1.npy", "output": save(f"{name}_zero_{layer}.npy", out)}


def gradient_reference(model, x, name):
    """d/dx of sum(output0 * weights) for fixed random weights."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    (grad,) = torch.autograd.grad((out * w).sum(), x)
    return {"input": f"{name}_x3.npy", "weights": save(f"{name}_grad_weights.npy", w),
            "gradient": save(f"{name}_grad.npy", grad)}


def check_onnx_matches(path, model, x):
    """The exported file, run by onnx's reference evaluator, agrees with PyTorch."""
    from onnx.reference import ReferenceEvaluator
    sess = ReferenceEvaluator(str(path))
    got = sess.run(None, {sess.input_names[0]: x.numpy()})
    for ours, ref in zip(got, outputs_of(model, x)):
        err = np.abs(ours - ref.numpy()).max()
        scale = np.abs(ref.numpy()).max()
        assert err <= 1e-4 * scale + 1e-5, f"{path.name}: ONNX reference differs by {err}"


def onnx_module_paths(path):
    """Module paths named by any node's pkg.torch.onnx.name_scopes (the root and the op dropped)."""
    import ast
    paths = set()
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        for p in node.metadata_props:
            if p.key == "pkg.torch.onnx.name_scopes":
                paths.update(s for s in ast.literal_eval(p.value)[1:-1] if s)
    return paths


def expected_layers(model, x, path):
    """PyTorch's entered modules, less those the exporter fused into another node (a conv and
    the batch norm after it become one Conv node carrying one of the two modules' names);
    anything else missing is an error here."""
    entered = entered_modules(model, x)
    present = onnx_module_paths(path)
    modules = dict(model.named_modules())
    fused = [n for n in entered if n not in present]
    for n in fused:
        assert isinstance(modules[n], (nn.BatchNorm2d, nn.BatchNorm3d, nn.Conv2d, nn.Conv3d)), f"{path.name}: {n} has no node"
    return [n for n in entered if n in present], fused


def add_case(manifest, name, model, input_shape, dynamic=True, fixed_batch=None, hook_layer=None,
             gradient=False, optimize=True):
    model.eval()
    path = OUT / f"{name}.onnx"
    g = torch.Generator().manual_seed(len(manifest) + 100)
    inputs = {b: torch.rand((b,) + tuple(input_shape), generator=g) for b in (1, 3)}
    export(model, inputs[1] if fixed_batch is None else torch.rand((fixed_batch,) + tuple(input_shape)),
           path, dynamic, optimize)
    check_onnx_matches(path, model, inputs[1] if fixed_batch in (None, 1) else
                       torch.rand((fixed_batch,) + tuple(input_shape)))
    entry = {"name": name, "model": path.name, "dynamic": dynamic, "fixed_batch": fixed_batch,
             "optimized": optimize, "cases": []}
    entry["layers"], entry["fused_away"] = expected_layers(model, inputs[1], path)
    for b, x in inputs.items():
        outs = outputs_of(model, x)
        entry["cases"].append({"input": save(f"{name}_x{b}.npy", x),
                               "outputs": [save(f"{name}_x{b}_out{k}.npy", o) for k, o in enumerate(outs)]})
    if hook_layer:
        entry["zero_hook"] = zero_hook_reference(model, hook_layer, inputs[1], name)
    if gradient:
        entry["gradient"] = gradient_reference(model, inputs[3], name)
    manifest.append(entry)
    print(f"{name}: {len(entry['layers'])} layers, outputs {[tuple(o.shape) for o in outs]}")


def from_torchscript(model, pt):
    model.load_state_dict(torch.jit.load(str(FIXTURES / pt)).state_dict())
    return model.eval()


# --------------------------------------------------------------------------
# error fixtures and vessel models
# --------------------------------------------------------------------------


def error_fixtures():
    x = oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["B", 3])
    y = oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["B", 3])
    relu = oh.make_node("Relu", ["x"], ["r"], name="node_relu")
    einsum = oh.make_node("Einsum", ["r", "r"], ["y"], name="node_einsum", equation="bi,bi->bi")
    einsum.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'mixer', 'einsum']")
    graph = oh.make_graph([relu, einsum], "unsupported", [x], [y])
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 20)]), OUT / "unsupported_einsum.onnx")
    (OUT / "corrupt.onnx").write_bytes(b"this is not an ONNX protobuf\xff\xfe\x00" * 8)


def vessel_models():
    for name in ("unet", "unet_mss", "unet_mss_deform"):
        model = tv.Probabilities(tv.make_net(name))
        model.load_state_dict(torch.jit.load(str(VESSELS / f"{name}.pt")).state_dict())
        model.eval()
        files = tv.export_onnx(model, name)
        if isinstance(files, str):
            raise RuntimeError(f"{name}: export failed: {files}")
        x = torch.rand(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(3))
        check_onnx_matches(VESSELS / f"{name}.onnx", model, x)
        for f, size in files.items():
            assert size < 2 * 1024 * 1024, f"{f} is {size} bytes"
        print(f"vessels {name}: {files}")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    manifest = []
    c2d = from_torchscript(Classifier2d(), "classifier2d.pt")
    add_case(manifest, "classifier2d", c2d, (3, 8, 8), hook_layer="conv2", gradient=True)
    add_case(manifest, "classifier2d_fixed_b2", c2d, (3, 8, 8), dynamic=False, fixed_batch=2)
    seg = from_torchscript(Segmenter3d(), "segmenter3d.pt")
    add_case(manifest, "segmenter3d", seg, (1, 8, 8, 8), gradient=True, hook_layer="mid")
    torch.manual_seed(1)
    add_case(manifest, "resnet_like", randomise_norms(ResNetLike(), 1), (3, 32, 32),
             hook_layer="layer2.0", gradient=True)
    torch.manual_seed(2)
    # Unoptimised, so that BatchNormalization stays a node instead of folding into the Conv.
    add_case(manifest, "unet3d_nearest", randomise_norms(UNetNearest(), 2), (1, 8, 8, 8), optimize=False,
             hook_layer="mid.1")
    torch.manual_seed(3)
    add_case(manifest, "unet3d_strided", randomise_norms(UNetStrided(), 3), (1, 8, 8, 8), gradient=True)
    torch.manual_seed(4)
    add_case(manifest, "deep_supervision", randomise_norms(DeepSupervision(), 4), (1, 8, 8, 8))
    torch.manual_seed(5)
    add_case(manifest, "less_common", randomise_norms(LessCommon(), 5), (2, 9, 9),
             hook_layer="gn", gradient=True)
    error_fixtures()
    (OUT / "manifest.json").write_text(json.dumps({"models": manifest}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"tests/fixtures/onnx: {total / 1024:.0f} KB")
    assert total < FOLDER_LIMIT, "the ONNX fixtures grew past 3 MB"
    if "--no-vessels" not in sys.argv:
        vessel_models()


if __name__ == "__main__":
    main()
