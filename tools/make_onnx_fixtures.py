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

plus two graphs made with onnx.helper (``spec_opset20``, ``spec_opset9``) for the op forms the
exporter does not write (auto_pad, asymmetric pads, negative slice steps, Upsample, attributes
that later became inputs, ...), with outputs from onnxruntime, and
``unsupported_unique.onnx`` (a Unique node, made with onnx.helper; ``--errors-only`` remakes
these alone), ``unsupported_several.onnx`` (several unsupported ops) and
``corrupt.onnx`` (not a protobuf) for the error tests. It also exports the trained vessel
models (tools/train_vessels.py; weights from configs/vessels/models/*.pt) to
``configs/vessels/models/*.onnx``, checking onnxruntime-free: the ONNX graph is re-run with
the ``onnx`` reference evaluator and compared to PyTorch.

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install onnx onnxscript onnxruntime   # once
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
from make_fixtures import Classifier2d, Segmenter3d, start_fixtures  # noqa: E402
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
    # Unique: data-dependent output shapes, which no vision model of the field needs.
    unique = oh.make_node("Unique", ["r"], ["y"], name="node_unique", sorted=1)
    unique.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'mixer', 'unique']")
    graph = oh.make_graph([relu, unique], "unsupported", [x], [y])
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 20)]), OUT / "unsupported_unique.onnx")
    (OUT / "corrupt.onnx").write_bytes(b"this is not an ONNX protobuf\xff\xfe\x00" * 8)
    # Several unsupported ops at once (five Unique nodes, a custom-domain op, a
    # Unique-free layer between them): the loader names them all in one error.
    nodes, last = [], "x"
    for i in range(5):
        node = oh.make_node("Unique", [last], [f"u{i}"], name=f"node_unique_{i}", sorted=1)
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes",
                                value=f"['', 'block{i}', 'unique']")
        nodes.append(node)
        last = f"u{i}"
    nodes.append(oh.make_node("FusedGelu", [last], ["g"], name="node_fused", domain="com.microsoft"))
    nodes.append(oh.make_node("Relu", ["g"], ["y"], name="node_relu"))
    graph = oh.make_graph(nodes, "unsupported_several", [x], [y])
    opsets = [oh.make_opsetid("", 20), oh.make_opsetid("com.microsoft", 1)]
    onnx.save(oh.make_model(graph, opset_imports=opsets), OUT / "unsupported_several.onnx")


# --------------------------------------------------------------------------
# ops PyTorch's exporter does not write (or not in these forms), checked against onnxruntime
# (onnx.reference's evaluator is wrong here on MaxPool with auto_pad=SAME_LOWER and on the
# flattening Softmax of opsets before 13)
# --------------------------------------------------------------------------


def f32(name, shape, seed):
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return onnx.numpy_helper.from_array(values, name)


def i64(name, values):
    return onnx.numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def spec_opset20():
    """One input [B, 2, 6, 7], one output per op form."""
    n, outs = oh.make_node, []
    nodes = [
        n("Conv", ["x", "w_same"], ["o_conv_same"], auto_pad="SAME_UPPER", strides=[2, 2]),
        n("Conv", ["x", "w_group", "b_group"], ["o_conv_asym"], pads=[0, 1, 2, 0], dilations=[2, 1], group=2),
        n("MaxPool", ["x"], ["o_maxpool_same"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
        n("AveragePool", ["x"], ["o_avgpool_asym"], kernel_shape=[2, 3], pads=[1, 0, 0, 2], strides=[1, 2]),
        n("Resize", ["x", "", "", "sizes"], ["o_resize_nearest"], mode="nearest", axes=[2, 3],
          coordinate_transformation_mode="pytorch_half_pixel", nearest_mode="round_prefer_ceil"),
        n("Resize", ["x", "", "scales"], ["o_resize_linear_asym"], mode="linear",
          coordinate_transformation_mode="asymmetric"),
        n("Resize", ["x", "", "scales_down"], ["o_resize_linear_half"], mode="linear"),
        # An axis shrunk to 1 under pytorch_half_pixel: not PyTorch's kernel, the separable path.
        n("Resize", ["x", "", "", "sizes_small"], ["o_resize_linear_to_one"], mode="linear", axes=[2, 3],
          coordinate_transformation_mode="pytorch_half_pixel"),
        n("Slice", ["x", "starts", "ends", "slice_axes", "steps"], ["o_slice_negative"]),
        n("Gather", ["x", "gather_idx"], ["o_gather"], axis=3),
        n("ReduceProd", ["x", "axis1"], ["o_reduce_prod"], keepdims=0),
        n("ReduceL2", ["x", "axes23"], ["o_reduce_l2"]),
        n("ReduceSumSquare", ["x", "axes23"], ["o_reduce_sumsq"], keepdims=0),
        n("ArgMax", ["x"], ["argmax"], axis=1, select_last_index=1, keepdims=1),
        n("Cast", ["argmax"], ["o_argmax"], to=onnx.TensorProto.FLOAT),
        n("ConvTranspose", ["x", "w_t", "b_t"], ["o_convtranspose"], strides=[2, 2], pads=[1, 0, 0, 1],
          output_padding=[1, 1]),
        n("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
        n("Flatten", ["xt"], ["o_flatten"], axis=2),
        n("Pad", ["x", "pads", "", "pad_axes"], ["o_pad_reflect"], mode="reflect"),
        n("Pad", ["x", "pads_const", "pad_value"], ["o_pad_constant"], mode="constant"),
        n("Pad", ["x", "pads", "", "pad_axes"], ["o_pad_wrap"], mode="wrap"),
        n("Shape", ["x"], ["spatial"], start=2),
        n("ConstantOfShape", ["spatial"], ["fill"], value=onnx.numpy_helper.from_array(np.array([1.5], np.float32))),
        n("Add", ["x", "fill"], ["o_shape_fill"]),
        n("Selu", ["x"], ["selu"]), n("Celu", ["x"], ["celu"], alpha=0.5),
        n("HardSigmoid", ["x"], ["hsig"]), n("Softsign", ["x"], ["ssign"]),
        n("Sin", ["x"], ["sin"]), n("Erf", ["x"], ["erf"]), n("Round", ["x"], ["round"]),
        n("Sign", ["x"], ["sign"]),
        n("Mean", ["selu", "celu", "hsig"], ["mean3"]), n("Max", ["ssign", "sin"], ["max2"]),
        n("Min", ["erf", "round", "sign"], ["min3"]), n("Sum", ["mean3", "max2", "min3"], ["o_math"]),
        n("LayerNormalization", ["x", "ln_scale", "ln_bias"], ["o_layernorm"], axis=1, epsilon=1e-3),
        n("GroupNormalization", ["x", "gn_scale", "gn_bias"], ["o_groupnorm"], num_groups=2),
        n("Split", ["x"], ["s0", "s1", "s2"], axis=3, num_outputs=3),
        n("Concat", ["s2", "s0", "s1"], ["o_split"], axis=3),
        n("Less", ["x", "zero"], ["neg"]), n("Greater", ["x", "one"], ["big"]),
        n("Or", ["neg", "big"], ["outside"]), n("Not", ["outside"], ["inside"]),
        n("Equal", ["inside", "outside"], ["never"]), n("Xor", ["inside", "never"], ["inside2"]),
        n("And", ["inside2", "inside"], ["mask"]), n("Where", ["mask", "x", "zero"], ["o_where"]),
        n("Clip", ["x", "", "one"], ["o_clip_max_only"]),
        n("Range", ["r_start", "r_limit", "r_delta"], ["steps7"]),
        n("Cast", ["steps7"], ["steps7f"], to=onnx.TensorProto.FLOAT),
        n("Mul", ["x", "steps7f"], ["o_range"]),
        n("Unsqueeze", ["x", "axis1"], ["x5"]), n("Squeeze", ["x5", "axis1"], ["x4"]),
        n("Tile", ["x4", "tiles"], ["tiled"]), n("Expand", ["ones11", "expand_shape"], ["big1"]),
        n("Mul", ["tiled", "big1"], ["o_tile_expand"]),
        n("Softmax", ["x"], ["o_softmax_axis2"], axis=2),
        n("Gemm", ["gemm_a", "gemm_b", "gemm_c"], ["o_gemm_const"], alpha=0.5, beta=2.0, transA=1),
    ]
    inits = [
        f32("w_same", (3, 2, 3, 3), 1), f32("w_group", (4, 1, 2, 2), 2), f32("b_group", (4,), 3),
        i64("sizes", [9, 4]), onnx.numpy_helper.from_array(np.array([1, 1, 1.5, 0.5], np.float32), "scales"),
        onnx.numpy_helper.from_array(np.array([1, 1, 0.5, 0.6], np.float32), "scales_down"),
        i64("sizes_small", [1, 4]),
        i64("starts", [-1, 4]), i64("ends", [-100, 0]), i64("slice_axes", [3, 2]), i64("steps", [-2, -1]),
        i64("gather_idx", [[0, -1], [2, 3]]), i64("axis1", [1]), i64("axes23", [2, 3]),
        f32("w_t", (2, 3, 3, 3), 4), f32("b_t", (3,), 5),
        i64("pads", [1, 2, 2, 1]), i64("pad_axes", [2, 3]), i64("pads_const", [0, 0, 1, 0, 0, 1, 3, 2]),
        onnx.numpy_helper.from_array(np.array(0.5, np.float32), "pad_value"),
        f32("ln_scale", (2, 6, 7), 6), f32("ln_bias", (2, 6, 7), 7),
        f32("gn_scale", (2,), 8), f32("gn_bias", (2,), 9),
        onnx.numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        i64("r_start", 0), i64("r_limit", 7), i64("r_delta", 1),
        i64("tiles", [1, 2, 1, 1]), onnx.numpy_helper.from_array(np.ones((1, 1), np.float32), "ones11"),
        i64("expand_shape", [4, 1, 7]),
        f32("gemm_a", (3, 2), 10), f32("gemm_b", (3, 4), 11), f32("gemm_c", (4,), 12),
    ]
    outs = [o for node in nodes for o in node.output if o.startswith("o_")]
    graph = oh.make_graph(nodes, "spec_opset20",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["B", 2, 6, 7])],
                          [oh.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outs], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 20)]), (2, 6, 7)


def spec_opset9():
    """The older forms: Upsample, attributes that later became inputs, flattening Softmax."""
    n = oh.make_node
    nodes = [
        n("Upsample", ["x", "up_scales"], ["o_upsample_nearest"], mode="nearest"),
        n("Upsample", ["x", "up_scales"], ["o_upsample_linear"], mode="linear"),
        n("Softmax", ["x"], ["o_softmax_flatten"], axis=1),
        n("Clip", ["x"], ["o_clip_attrs"], min=-0.5, max=0.7),
        n("Slice", ["x"], ["o_slice_attrs"], starts=[1, -3], ends=[5, 100], axes=[2, 3]),
        n("Unsqueeze", ["x"], ["xu"], axes=[0]), n("Squeeze", ["xu"], ["o_squeeze_attrs"], axes=[0]),
        n("Split", ["x"], ["a", "b"], axis=2, split=[2, 4]), n("Mul", ["a", "a"], ["a2"]),
        n("ReduceMean", ["b"], ["o_reduce_attrs"], axes=[2], keepdims=1),
        n("Pad", ["a2"], ["o_pad_attrs"], pads=[0, 0, 1, 0, 0, 0, 0, 2], value=0.25),
        n("LeakyRelu", ["x"], ["o_leaky_default"]),
        n("Dropout", ["x"], ["o_dropout", "dropmask"]),
    ]
    inits = [onnx.numpy_helper.from_array(np.array([1, 1, 2, 3], np.float32), "up_scales")]
    outs = [o for node in nodes for o in node.output if o.startswith("o_")]
    graph = oh.make_graph(nodes, "spec_opset9",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["B", 2, 6, 7])],
                          [oh.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outs], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 9)], ir_version=4), (2, 6, 7)


def add_spec_case(manifest, name, build):
    import onnxruntime
    model, shape = build()

    path = OUT / f"{name}.onnx"
    onnx.save(model, path)
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = np.random.default_rng(len(manifest) + 100)
    entry = {"name": name, "model": path.name, "dynamic": True, "fixed_batch": None,
             "reference": f"onnxruntime {onnxruntime.__version__}", "optimized": False, "cases": [],
             "layers": [], "fused_away": [],
             "output_names": [o.name for o in model.graph.output]}
    for b in (1, 3):
        x = (g.standard_normal((b,) + shape) * 1.5).astype(np.float32)
        outs = sess.run(None, {"x": x})
        entry["cases"].append({"input": save(f"{name}_x{b}.npy", x),
                               "outputs": [save(f"{name}_x{b}_out{k}.npy", o.astype(np.float32))
                                           for k, o in enumerate(outs)]})
    manifest.append(entry)
    print(f"{name}: {len(entry['output_names'])} outputs")


def vessel_models():
    """Unoptimised exports: every module keeps its node and every state_dict key its tensor
    (the optimiser folds batch norm into the conv before it, under the conv's weight name, and
    merges equal initializers), so layers and randomisation by parameter name stay faithful."""
    for name in ("unet", "unet_mss", "unet_mss_deform"):
        model = tv.Probabilities(tv.make_net(name))
        model.load_state_dict(torch.jit.load(str(VESSELS / f"{name}.pt")).state_dict())
        model.eval()
        path = VESSELS / f"{name}.onnx"
        example = torch.rand(2, 1, tv.SIZE, tv.SIZE, tv.SIZE, generator=torch.Generator().manual_seed(1))
        export(model, example, path, dynamic=True, optimize=False)
        x = torch.rand(1, 1, tv.SIZE, tv.SIZE, tv.SIZE, generator=torch.Generator().manual_seed(3))
        check_onnx_matches(path, model, x)
        names = {i.name for i in onnx.load(str(path), load_external_data=False).graph.initializer}
        missing = {k for k, v in model.state_dict().items() if v.is_floating_point()} - names
        assert not missing, f"{name}: state_dict keys without an initializer: {sorted(missing)[:5]}"
        files = {p.name: p.stat().st_size for p in (path, path.with_name(path.name + ".data")) if p.exists()}
        for f, size in files.items():
            assert size < 2 * 1024 * 1024, f"{f} is {size} bytes"
        print(f"vessels {name}: {files}")


def main():
    if "--errors-only" in sys.argv:
        error_fixtures()
        return
    start_fixtures(OUT)
    manifest = []
    c2d = from_torchscript(Classifier2d(), "classifier2d.pt")
    add_case(manifest, "classifier2d", c2d, (3, 8, 8), hook_layer="conv2", gradient=True)
    add_case(manifest, "classifier2d_fixed_b2", c2d, (3, 8, 8), dynamic=False, fixed_batch=2)
    seg = from_torchscript(Segmenter3d(), "segmenter3d.pt")
    add_case(manifest, "segmenter3d", seg, (1, 8, 8, 8), gradient=True, hook_layer="mid")
    torch.manual_seed(1)
    add_case(manifest, "resnet_like", randomise_norms(ResNetLike(), 1), (3, 32, 32),
             hook_layer="layer2.0", gradient=True)
    # As tools/export_model.py exports by default: unoptimised, batch norms kept.
    torch.manual_seed(1)
    add_case(manifest, "resnet_like_unoptimized", randomise_norms(ResNetLike(), 1), (3, 32, 32),
             hook_layer="layer2.0.bn2", gradient=True, optimize=False)
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
    add_spec_case(manifest, "spec_opset20", spec_opset20)
    add_spec_case(manifest, "spec_opset9", spec_opset9)
    error_fixtures()
    (OUT / "manifest.json").write_text(json.dumps({"models": manifest}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"tests/fixtures/onnx: {total / 1024:.0f} KB")
    assert total < FOLDER_LIMIT, "the ONNX fixtures grew past 3 MB"
    if "--no-vessels" not in sys.argv:
        vessel_models()


if __name__ == "__main__":
    main()
