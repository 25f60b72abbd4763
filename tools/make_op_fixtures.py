"""Build the per-op fixtures of esegeta's ONNX importer (tests/onnx_ops.rs).

What it does
------------
Writes one tiny ONNX model per case into ``tests/fixtures/ops/``, with PyTorch's answer for
it, so that the test can check every op's forward and backward on its own:

* ``spec`` cases: one node made with ``onnx.helper``, so that every attribute, axis sign and
  opset form can be chosen. The node's first input is the graph's input; the others are
  initializers (the test feeds all of them to the node directly). The reference is the same
  op written in PyTorch (``torch.einsum``, ``torch.gather``, ``F.interpolate``, ...), or, for
  forms PyTorch has no kernel for (cubic with another coefficient, MaxPool indices over
  asymmetric pads), a plain loop over the ONNX formula.
* ``export`` cases: a one-op ``nn.Module`` exported by ``torch.onnx.export(..., dynamo=True)``,
  so the attributes are exactly those PyTorch 2.13's exporter writes; the reference is the
  module itself.

For each case: ``<case>_in<i>.npy`` (inputs), ``<case>_out<k>.npy`` (PyTorch's outputs),
``<case>_cot<k>.npy`` (a seeded random cotangent for each floating output) and
``<case>_grad<i>.npy`` (``torch.autograd`` gradient of ``sum_k sum(out_k * cot_k)`` with
respect to each floating input; zeros where the output does not depend on it
differentiably), listed in ``cases.json`` with each tensor's dtype and shape (the npy reader
of the tests gives float32, which holds these small integers exactly, and reads a scalar as
one element).

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install onnx onnxscript torch==2.13.0   # once
    ~/.cache/esegeta/venv/bin/python tools/make_op_fixtures.py

Seeded, float32, CPU, one thread. The folder stays well under 1 MB (checked at the end).
"""

import itertools
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "ops"
LIMIT = 1024 * 1024
CASES = []

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
RNG = np.random.default_rng(19)

ONNX_TYPE = {
    np.dtype("float32"): onnx.TensorProto.FLOAT,
    np.dtype("int64"): onnx.TensorProto.INT64,
    np.dtype("bool"): onnx.TensorProto.BOOL,
}


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def ints(values):
    return np.asarray(values, dtype=np.int64)


def save_npy(name, array):
    np.save(OUT / name, np.ascontiguousarray(array))
    return name


def record(name, kind, model, inputs, grads_wanted, outputs, grad_fn):
    """Saves one case: inputs (numpy), outputs (torch), cotangents and gradients."""
    entry = {"name": name, "kind": kind, "model": model, "inputs": [], "outputs": []}
    for i, array in enumerate(inputs):
        entry["inputs"].append({
            "file": save_npy(f"{name}_in{i}.npy", array),
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "grad": bool(grads_wanted[i]),
        })
    cotangents = []
    for k, out in enumerate(outputs):
        o = out.detach().numpy()
        item = {"file": save_npy(f"{name}_out{k}.npy", o), "dtype": str(o.dtype),
                "shape": list(o.shape)}
        if out.is_floating_point():
            cot = randn(*o.shape)
            item["cotangent"] = save_npy(f"{name}_cot{k}.npy", cot)
            cotangents.append((out, torch.from_numpy(cot)))
        entry["outputs"].append(item)
    grads = grad_fn(cotangents)
    for i, g in enumerate(grads):
        if g is not None:
            entry["inputs"][i]["gradient"] = save_npy(f"{name}_grad{i}.npy", g)
    CASES.append(entry)


def gradients(leaves, cotangents):
    """d sum_k sum(out_k * cot_k) / d leaf, zeros where nothing differentiable depends on it."""
    loss = sum((o * c).sum() for o, c in cotangents if o.requires_grad)
    wanted = [t for t in leaves if t is not None]
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        found = [torch.zeros_like(t) for t in wanted]
    else:
        found = torch.autograd.grad(loss, wanted, allow_unused=True)
        found = [torch.zeros_like(t) if g is None else g for t, g in zip(wanted, found)]
    it = iter(found)
    return [None if t is None else next(it).numpy() for t in leaves]


def spec(name, op, inputs, ref, attrs=None, grad=None, outputs=1, opset=20):
    """A one-node graph of `op`; `ref` computes its outputs from torch tensors."""
    grad = grad if grad is not None else [a.dtype == np.float32 for a in inputs]
    names = [f"in{i}" for i in range(len(inputs))]
    leaves = [torch.tensor(a, requires_grad=g) if g else None for a, g in zip(inputs, grad)]
    tensors = [leaf if leaf is not None else torch.from_numpy(a.copy())
               for leaf, a in zip(leaves, inputs)]
    result = ref(*tensors)
    result = list(result) if isinstance(result, (tuple, list)) else [result]
    assert len(result) == outputs, name
    out_names = [f"out{k}" for k in range(outputs)]
    node = oh.make_node(op, names, out_names, name=f"node_{name}", **(attrs or {}))
    first = inputs[0]
    graph = oh.make_graph(
        [node],
        name,
        [oh.make_tensor_value_info(names[0], ONNX_TYPE[first.dtype], list(first.shape))],
        [oh.make_tensor_value_info(n, ONNX_TYPE[np.dtype(r.detach().numpy().dtype)],
                                   list(r.shape))
         for n, r in zip(out_names, result)],
        initializer=[onnx.numpy_helper.from_array(a, n) for n, a in zip(names[1:], inputs[1:])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, OUT / f"{name}.onnx")
    record(name, "spec", f"{name}.onnx", inputs, grad, result,
           lambda cots: gradients(leaves, cots))


class OneOp(torch.nn.Module):
    def __init__(self, f, **buffers):
        super().__init__()
        self.f = f
        for k, v in buffers.items():
            self.register_buffer(k, v)

    def forward(self, x):
        return self.f(self, x)


def export(name, f, x, optimize=True, **buffers):
    """A one-op module as PyTorch's dynamo exporter writes it, with a fixed input shape."""
    module = OneOp(f, **buffers).eval()
    program = torch.onnx.export(module, (torch.from_numpy(x),), dynamo=True, verbose=False,
                                optimize=optimize)
    onnx.save(program.model_proto, OUT / f"{name}.onnx")
    leaf = torch.tensor(x, requires_grad=True)
    result = module(leaf)
    result = list(result) if isinstance(result, (tuple, list)) else [result]
    record(name, "export", f"{name}.onnx", [x], [True], result,
           lambda cots: gradients([leaf], cots))


# --------------------------------------------------------------------------
# references for forms PyTorch has no kernel for
# --------------------------------------------------------------------------


def cubic_matrix(n_in, n_out, scale, a, exclude_outside, mode):
    """The [n_out, n_in] matrix of ONNX's cubic Resize along one axis (edge taps repeated)."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        if mode == "align_corners":
            x = 0.0 if n_out == 1 else i * (n_in - 1) / (n_out - 1)
        elif mode == "asymmetric":
            x = i / scale
        elif mode == "pytorch_half_pixel":
            x = (i + 0.5) / scale - 0.5 if n_out > 1 else 0.0
        else:
            x = (i + 0.5) / scale - 0.5
        base = np.floor(x)
        t = x - base
        taps = []
        for o in (-1, 0, 1, 2):
            d = abs(t - o)
            w = (((a + 2) * d - (a + 3)) * d * d + 1) if d <= 1 else \
                ((((a * d - 5 * a) * d + 8 * a) * d - 4 * a) if d < 2 else 0.0)
            taps.append((int(base) + o, w))
        if exclude_outside:
            taps = [(j, w if 0 <= j < n_in else 0.0) for j, w in taps]
            total = sum(w for _, w in taps)
            taps = [(j, w / total) for j, w in taps]
        for j, w in taps:
            m[i, min(max(j, 0), n_in - 1)] += w
    return torch.tensor(m, dtype=torch.float32)


def cubic_resize(x, out_hw, scales, a, exclude_outside, mode):
    h = cubic_matrix(x.shape[2], out_hw[0], scales[0], a, exclude_outside, mode)
    w = cubic_matrix(x.shape[3], out_hw[1], scales[1], a, exclude_outside, mode)
    return torch.einsum("oh,nchw,pw->ncop", h, x, w)


def maxpool_reference(x, kernel, strides, begins, ends, dilations, ceil_mode):
    """Values from torch (input padded with -inf) and ONNX indices by a loop over windows:
    the flat position, in the whole unpadded input, of each window's first maximum."""
    nd = len(kernel)
    pad = []
    for b, e in zip(reversed(begins), reversed(ends)):
        pad += [b, e]
    padded = F.pad(x, pad, value=float("-inf"))
    pool = [F.max_pool1d, F.max_pool2d, F.max_pool3d][nd - 1]
    values = pool(padded, kernel, strides, 0, dilations, ceil_mode)
    xs = x.detach().numpy()
    spatial = xs.shape[2:]
    idx = np.zeros(values.shape, dtype=np.int64)
    for n, c in itertools.product(range(xs.shape[0]), range(xs.shape[1])):
        for out in itertools.product(*[range(s) for s in values.shape[2:]]):
            best, where = -np.inf, -1
            for k in itertools.product(*[range(s) for s in kernel]):
                pos = [o * s + kk * d - b
                       for o, s, kk, d, b in zip(out, strides, k, dilations, begins)]
                if all(0 <= p < size for p, size in zip(pos, spatial)):
                    v = xs[(n, c, *pos)]
                    if v > best:
                        best = v
                        where = np.ravel_multi_index((n, c, *pos), xs.shape)
            idx[(n, c, *out)] = where
    return values, torch.from_numpy(idx)


def gather_nd(data, idx, batch_dims):
    if batch_dims == 0:
        return data[tuple(idx.unbind(-1))]
    return torch.stack([gather_nd(d, i, batch_dims - 1) for d, i in zip(data, idx)])


def wrap(idx, lens):
    return torch.where(idx < 0, idx + lens, idx)


def scatter_nd(data, idx, upd, reduction):
    k = idx.shape[-1]
    lens = torch.tensor(data.shape[:k])
    pos = tuple(wrap(idx, lens).unbind(-1))
    if reduction in ("none", "add"):
        return data.index_put(pos, upd, accumulate=reduction == "add")
    flat = data.reshape(-1, *data.shape[k:])
    rows = torch.tensor(np.ravel_multi_index([p.numpy() for p in pos], data.shape[:k]))
    rows = rows.reshape(-1, *[1] * (data.dim() - k)).expand(-1, *data.shape[k:])
    reduce = {"mul": "prod", "max": "amax", "min": "amin"}[reduction]
    out = flat.scatter_reduce(0, rows, upd.reshape(-1, *data.shape[k:]), reduce)
    return out.reshape(data.shape)


def scatter_elements(data, idx, upd, axis, reduction):
    idx = wrap(idx, data.shape[axis])
    if reduction == "none":
        return data.scatter(axis, idx, upd)
    reduce = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return data.scatter_reduce(axis, idx, upd, reduce)


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------


def einsum_cases():
    spec("einsum_matmul", "Einsum", [randn(3, 4), randn(4, 5)],
         lambda a, b: torch.einsum("ij,jk->ik", a, b), {"equation": "ij,jk->ik"})
    spec("einsum_attention", "Einsum", [randn(2, 3, 5, 4), randn(2, 3, 6, 4)],
         lambda q, k: torch.einsum("bhqd,bhkd->bhqk", q, k),
         {"equation": "bhqd,bhkd->bhqk"})
    spec("einsum_broadcast_ellipsis", "Einsum", [randn(2, 1, 3, 4), randn(5, 4, 2)],
         lambda a, b: torch.einsum("...ij,...jk->...ik", a, b),
         {"equation": "...ij,...jk->...ik"})
    spec("einsum_implicit_spaces", "Einsum", [randn(3, 4), randn(4, 2)],
         lambda a, b: torch.einsum("ij,jk", a, b), {"equation": " ij , jk "})
    spec("einsum_diagonal_sum", "Einsum", [randn(4, 4, 3)],
         lambda a: torch.einsum("iij->j", a), {"equation": "iij->j"})


def gather_scatter_cases():
    data = randn(3, 4, 5)
    spec("gather_elements_axis1", "GatherElements",
         [data, ints(RNG.integers(0, 4, (3, 2, 5)))],
         lambda d, i: torch.gather(d, 1, i), {"axis": 1})
    neg = ints(RNG.integers(-5, 5, (2, 4, 3)))
    spec("gather_elements_negative", "GatherElements", [data, neg],
         lambda d, i: torch.gather(d, 2, wrap(i, 5)), {"axis": -1})
    # GatherND: whole elements, slices, batch_dims, negative indices.
    spec("gather_nd_elements", "GatherND", [randn(3, 4), ints([[0, 1], [2, 3], [1, 0]])],
         lambda d, i: gather_nd(d, i, 0))
    spec("gather_nd_slices_negative", "GatherND",
         [randn(4, 3, 2), ints([[[-1], [0]], [[2], [-3]]])],
         lambda d, i: gather_nd(d, wrap(i, 4), 0))
    spec("gather_nd_batch_dims", "GatherND",
         [randn(2, 3, 4, 2), ints(RNG.integers(0, 3, (2, 5, 2)) * [1, 1])],
         lambda d, i: gather_nd(d, i, 1), {"batch_dims": 1})
    # ScatterND: each reduction, slices, negative indices; duplicates only where reduced.
    d = randn(4, 3)
    spec("scatter_nd_none", "ScatterND", [d, ints([[1], [-1]]), randn(2, 3)],
         lambda a, i, u: scatter_nd(a, i, u, "none"))
    spec("scatter_nd_elements", "ScatterND", [randn(2, 3, 4), ints([[0, 1, 2], [1, -1, 0]]),
                                              randn(2)],
         lambda a, i, u: scatter_nd(a, i, u, "none"))
    for r in ("add", "mul", "max", "min"):
        spec(f"scatter_nd_{r}", "ScatterND", [d, ints([[1], [3], [1]]), randn(3, 3)],
             lambda a, i, u, r=r: scatter_nd(a, i, u, r), {"reduction": r}, opset=18)
    # ScatterElements: axis signs, each reduction.
    d = randn(3, 4)
    spec("scatter_elements_none", "ScatterElements",
         [d, ints([[1, 0, 2, 0], [0, 2, 1, 1]]), randn(2, 4)],
         lambda a, i, u: scatter_elements(a, i, u, 0, "none"), {"axis": 0})
    dup = ints([[0, -1, 0], [3, 3, 1], [2, 2, 2]])
    for r in ("add", "mul", "max", "min"):
        spec(f"scatter_elements_{r}", "ScatterElements", [d, dup, randn(3, 3)],
             lambda a, i, u, r=r: scatter_elements(a, i, u, 1, r),
             {"axis": -1, "reduction": r}, opset=18)


def select_cases():
    x = randn(3, 6, 2)
    spec("topk_largest_last_axis", "TopK", [randn(2, 3, 7), ints([3])],
         lambda t, k: torch.topk(t, 3, -1), outputs=2)
    # sorted=0 leaves the order open: the sorted order is a valid answer, and esegeta's.
    spec("topk_smallest_axis1_unsorted", "TopK", [x, ints([2])],
         lambda t, k: torch.topk(t, 2, 1, largest=False),
         {"axis": 1, "largest": 0, "sorted": 0}, outputs=2)
    spec("topk_opset9_attribute", "TopK", [x], lambda t: torch.topk(t, 4, 1),
         {"axis": -2, "k": 4}, outputs=2, opset=9)
    spec("cumsum_plain", "CumSum", [x, ints(1)], lambda t, a: torch.cumsum(t, 1))
    for exclusive, reverse in ((1, 0), (0, 1), (1, 1)):
        def cumsum(t, a, e=exclusive, r=reverse):
            s = t.flip(-1) if r else t
            y = torch.cumsum(s, -1) - (s if e else 0)
            return y.flip(-1) if r else y
        spec(f"cumsum_exclusive{exclusive}_reverse{reverse}", "CumSum", [x, ints(-1)], cumsum,
             {"exclusive": exclusive, "reverse": reverse})
    m = randn(2, 4, 5)
    spec("trilu_upper_default", "Trilu", [m], lambda t: torch.triu(t))
    spec("trilu_upper_k2", "Trilu", [m, ints(2)], lambda t, k: torch.triu(t, 2))
    spec("trilu_lower_k_neg1", "Trilu", [m, ints(-1)], lambda t, k: torch.tril(t, -1),
         {"upper": 0})
    idx = ints([[0, -1, 2], [4, 1, -5]])
    values = np.asarray([-0.5, 2.0], dtype=np.float32)

    def one_hot(i, depth, v, axis):
        hot = F.one_hot(wrap(i, 5), 5).bool()
        return torch.where(hot, v[1], v[0]).movedim(-1, axis)
    spec("one_hot_last_axis", "OneHot", [idx, ints([5]), values],
         lambda i, d, v: one_hot(i, d, v, -1), grad=[False, False, True], opset=11)
    spec("one_hot_axis0", "OneHot", [idx, ints(5), values],
         lambda i, d, v: one_hot(i, d, v, 0), {"axis": 0}, grad=[False, False, True],
         opset=11)
    z = randn(3, 4) * (RNG.random((3, 4)) > 0.5)
    spec("nonzero", "NonZero", [z.astype(np.float32)], lambda t: torch.nonzero(t).T,
         grad=[False])
    spec("hardmax_last_axis", "Hardmax", [randn(2, 3, 4)],
         lambda t: F.one_hot(t.argmax(-1), 4).float())
    spec("hardmax_axis1", "Hardmax", [randn(2, 3, 4)],
         lambda t: F.one_hot(t.argmax(1), 3).float().movedim(-1, 1), {"axis": 1})
    spec("hardmax_opset11_flattens", "Hardmax", [randn(2, 3, 4)],
         lambda t: F.one_hot(t.reshape(2, 12).argmax(1), 12).float().reshape(2, 3, 4),
         opset=11)


def arithmetic_cases():
    spec("range_int", "Range", [ints(2), ints(11), ints(3)],
         lambda s, l, d: torch.arange(2, 11, 3))
    spec("range_float_negative_delta", "Range",
         [np.asarray(v, np.float32) for v in (1.5, -1.0, -0.5)],
         lambda s, l, d: torch.arange(1.5, -1.0, -0.5), grad=[False, False, False])
    a = randn(2, 3, 4) * 3
    b = (np.abs(randn(4)) + 0.5) * np.sign(randn(4))
    spec("mod_fmod_broadcast", "Mod", [a, b.astype(np.float32)],
         lambda x, y: torch.fmod(x, y), {"fmod": 1})
    ia = ints(RNG.integers(-9, 9, (3, 4)))
    ib = ints([[3], [-4], [5]])
    spec("mod_integer_python_sign", "Mod", [ia, ib], lambda x, y: torch.remainder(x, y))
    x = randn(2, 3, 4)
    spec("reduce_log_sum_exp_axes_attr", "ReduceLogSumExp", [x],
         lambda t: torch.logsumexp(t, (-1, 0), keepdim=True), {"axes": [-1, 0]}, opset=17)
    spec("reduce_log_sum_exp_axes_input", "ReduceLogSumExp", [x * 30, ints([1])],
         lambda t, a: torch.logsumexp(t, 1), {"keepdims": 0}, opset=18)
    spec("reduce_log_sum_exp_all", "ReduceLogSumExp", [x],
         lambda t: torch.logsumexp(t, (0, 1, 2), keepdim=True), opset=18)
    spec("lp_normalization_l2_default", "LpNormalization", [x],
         lambda t: t / torch.linalg.vector_norm(t, 2, -1, keepdim=True))
    spec("lp_normalization_l1_axis1", "LpNormalization", [x],
         lambda t: t / torch.linalg.vector_norm(t, 1, 1, keepdim=True), {"axis": 1, "p": 1})
    spec("mish", "Mish", [randn(2, 3, 4) * 3], F.mish, opset=18)
    spec("thresholded_relu_default", "ThresholdedRelu", [randn(2, 3, 4) * 2],
         lambda t: F.threshold(t, 1.0, 0.0))
    spec("thresholded_relu_alpha", "ThresholdedRelu", [randn(2, 3, 4) * 2],
         lambda t: F.threshold(t, -0.3, 0.0), {"alpha": -0.3})


def space_cases():
    x = randn(2, 8, 3, 2)
    spec("depth_to_space_crd", "DepthToSpace", [x], lambda t: F.pixel_shuffle(t, 2),
         {"blocksize": 2, "mode": "CRD"})
    spec("depth_to_space_dcr_default", "DepthToSpace", [x],
         lambda t: F.pixel_shuffle(t.reshape(2, 4, 2, 3, 2).transpose(1, 2).reshape(2, 8, 3, 2),
                                   2),
         {"blocksize": 2})
    y = randn(2, 3, 4, 6)
    spec("space_to_depth", "SpaceToDepth", [y],
         lambda t: F.pixel_unshuffle(t, 2).reshape(2, 3, 4, 2, 3).transpose(1, 2)
         .reshape(2, 12, 2, 3),
         {"blocksize": 2})


def resize_cubic_cases():
    x = randn(1, 2, 5, 4)
    spec("resize_cubic_half_pixel_scales", "Resize",
         [x, np.zeros(0, np.float32), np.asarray([1, 1, 2, 1.5], np.float32)],
         lambda t, r, s: F.interpolate(t, scale_factor=(2, 1.5), mode="bicubic"),
         {"mode": "cubic", "cubic_coeff_a": -0.75, "coordinate_transformation_mode":
          "half_pixel", "nearest_mode": "floor", "exclude_outside": 0},
         grad=[True, False, False], opset=19)
    spec("resize_cubic_align_corners_sizes", "Resize",
         [x, np.zeros(0, np.float32), np.zeros(0, np.float32), ints([1, 2, 7, 3])],
         lambda t, r, s, z: F.interpolate(t, size=(7, 3), mode="bicubic", align_corners=True),
         {"mode": "cubic", "cubic_coeff_a": -0.75,
          "coordinate_transformation_mode": "align_corners"},
         grad=[True, False, False, False], opset=19)
    spec("resize_cubic_downscale_pytorch_half_pixel", "Resize",
         [randn(1, 1, 8, 6), np.zeros(0, np.float32), np.zeros(0, np.float32),
          ints([1, 1, 3, 4])],
         lambda t, r, s, z: F.interpolate(t, size=(3, 4), mode="bicubic"),
         {"mode": "cubic", "cubic_coeff_a": -0.75,
          "coordinate_transformation_mode": "pytorch_half_pixel"},
         grad=[True, False, False, False], opset=19)
    # One spatial axis: no PyTorch kernel, so the separable path; a height-1 bicubic is it.
    spec("resize_cubic_1d_separable", "Resize",
         [randn(2, 3, 5), np.zeros(0, np.float32), np.asarray([1, 1, 2.5], np.float32)],
         lambda t, r, s: F.interpolate(t[:, :, None], scale_factor=(1, 2.5),
                                       mode="bicubic")[:, :, 0],
         {"mode": "cubic", "coordinate_transformation_mode": "half_pixel"},
         grad=[True, False, False], opset=19)
    # Another coefficient and exclude_outside: the ONNX formula, written out above.
    spec("resize_cubic_a_half_exclude_outside_asymmetric", "Resize",
         [x, np.zeros(0, np.float32), np.asarray([1, 1, 1.6, 2], np.float32)],
         lambda t, r, s: cubic_resize(t, (8, 8), (1.6, 2), -0.5, True, "asymmetric"),
         {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1,
          "coordinate_transformation_mode": "asymmetric"},
         grad=[True, False, False], opset=19)


def maxpool_cases():
    def case(name, shape, kernel, strides, pads, dilations=None, ceil_mode=0):
        nd = len(kernel)
        dilations = dilations or [1] * nd
        x = randn(*shape)
        attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads,
                 "dilations": dilations, "ceil_mode": ceil_mode, "storage_order": 0}
        spec(name, "MaxPool", [x],
             lambda t: maxpool_reference(t, kernel, strides, pads[:nd], pads[nd:], dilations,
                                         bool(ceil_mode)),
             attrs, outputs=2, opset=12)
    case("maxpool_indices_2d_symmetric", (2, 3, 6, 5), [3, 3], [2, 2], [1, 1, 1, 1])
    case("maxpool_indices_2d_asymmetric_pads", (1, 2, 5, 6), [2, 3], [2, 1], [0, 1, 1, 0])
    case("maxpool_indices_1d_dilated_ceil", (2, 2, 9), [2], [2], [0, 0], [2], 1)
    case("maxpool_indices_3d", (1, 2, 4, 4, 3), [2, 2, 2], [2, 2, 1], [0, 0, 0, 0, 0, 1])


def export_cases():
    x = randn(1, 3, 4, 4)
    export("export_cumsum", lambda m, t: torch.cumsum(t, -1), x)
    export("export_topk", lambda m, t: torch.topk(t, 2, dim=-1), x)
    export("export_topk_smallest_unsorted",
           lambda m, t: torch.topk(t, 2, dim=1, largest=False, sorted=False), x)
    export("export_gather", lambda m, t: torch.gather(t, 1, m.index), x,
           index=torch.from_numpy(RNG.integers(0, 3, (1, 2, 4, 4))))
    export("export_scatter", lambda m, t: t.scatter(1, m.index, t[:, :1] * 2), x,
           index=torch.zeros(1, 1, 4, 4, dtype=torch.long))
    export("export_scatter_add", lambda m, t: t.scatter_add(1, m.index, t[:, 1:]), x,
           index=torch.from_numpy(RNG.integers(0, 3, (1, 2, 4, 4))))
    export("export_gather_negative_dim", lambda m, t: torch.gather(t, -1, m.index), x,
           index=torch.from_numpy(RNG.integers(0, 4, (1, 3, 4, 2))))
    export("export_scatter_reduce_amax",
           lambda m, t: t.scatter_reduce(2, m.index, t * 2, "amax"), x,
           index=torch.from_numpy(RNG.integers(0, 4, (1, 3, 4, 4))))
    export("export_scatter_reduce_prod",
           lambda m, t: t.scatter_reduce(-1, m.index, t[..., :2], "prod"), x,
           index=torch.from_numpy(RNG.integers(0, 4, (1, 3, 4, 2))))
    export("export_index_put", lambda m, t: t.index_put((m.i, m.j), t[0, 0] * 3), x,
           i=torch.tensor([0]), j=torch.tensor([1]))
    export("export_index_put_accumulate",
           lambda m, t: t.index_put((m.i, m.j), t[0, 0] * 3, accumulate=True), x,
           i=torch.tensor([0, 0]), j=torch.tensor([1, 1]))
    export("export_bicubic_half_pixel",
           lambda m, t: F.interpolate(t, scale_factor=2, mode="bicubic"), x)
    export("export_bicubic_align_corners",
           lambda m, t: F.interpolate(t, size=(7, 5), mode="bicubic", align_corners=True), x)
    export("export_maxpool_indices",
           lambda m, t: F.max_pool2d(t, 2, return_indices=True), x)
    export("export_maxpool_indices_padded",
           lambda m, t: F.max_pool2d(t, 3, 2, 1, return_indices=True), x)
    export("export_pixel_shuffle", lambda m, t: F.pixel_shuffle(t[:, :2].repeat(1, 2, 1, 1), 2),
           x)
    export("export_tril", lambda m, t: torch.tril(t, -1), x)
    export("export_triu", lambda m, t: torch.triu(t, 1), x)
    export("export_nonzero", lambda m, t: torch.nonzero(t > 0), x)
    export("export_logsumexp", lambda m, t: torch.logsumexp(t, dim=(-1,)), x)
    export("export_einsum", lambda m, t: torch.einsum("bchw,bcHW->bhwHW", t, t), x)
    export("export_mish", lambda m, t: F.mish(t), x)
    export("export_fmod", lambda m, t: torch.fmod(t, 0.7), x)
    # Unoptimised (tools/export_model.py's default), a bias-less 3D convolution gets the zero
    # bias Expand(0, [C_out, 2]), which esegeta reads as one zero per channel.
    export("export_conv3d_no_bias_unoptimised",
           lambda m, t: F.conv3d(t, m.weight, padding=1), randn(1, 2, 4, 4, 3), optimize=False,
           weight=torch.from_numpy(randn(3, 2, 3, 3, 3)))
    export("export_conv_transpose3d_no_bias_unoptimised",
           lambda m, t: F.conv_transpose3d(t, m.weight, stride=2), randn(1, 2, 3, 2, 2),
           optimize=False, weight=torch.from_numpy(randn(2, 3, 2, 2, 2)))
    # Unoptimised, torch.chunk and torch.split write SplitToSequence and SequenceAt.
    export("export_chunk_unoptimised",
           lambda m, t: torch.cat(torch.chunk(t, 2, dim=-1)[::-1], 1) * 2, x, optimize=False)
    export("export_split_unoptimised",
           lambda m, t: sum(p * (i + 1) for i, p in enumerate(torch.split(t, 1, dim=1))), x,
           optimize=False)
    # torchvision's vgg11_bn pools 7x7 adaptively; at other sizes the exporter gathers.
    export("export_adaptive_avg_pool", lambda m, t: F.adaptive_avg_pool2d(t, (3, 3)),
           randn(1, 2, 5, 7))


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    torch.manual_seed(19)
    einsum_cases()
    gather_scatter_cases()
    select_cases()
    arithmetic_cases()
    space_cases()
    resize_cubic_cases()
    maxpool_cases()
    export_cases()
    (OUT / "cases.json").write_text(json.dumps({"cases": CASES}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    assert total < LIMIT, f"tests/fixtures/ops holds {total} bytes, over {LIMIT}"
    print(f"{len(CASES)} cases, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
