"""Captum references for incremental evaluation (host/src/model/onnx/incremental.rs).

What it does
------------
Exports three small models to ONNX (dynamic batch) into ``tests/fixtures/incremental/`` and
runs Captum 0.9's Occlusion and FeatureAblation on the PyTorch modules, so that
tests/incremental.rs can check that esegeta's incremental maps equal Captum's. The models
and cases are chosen so that perturbations stay local through several layers and reach every
kind of window there is:

* ``resnet_like``: ResNet-18's layout at tiny widths (tools/make_onnx_fixtures.py) on
  3x64x64, unoptimised so that batch norms stay nodes: a 7x7 stride-2 stem, max-pool, residual
  additions of boxes of different sizes, strided 1x1 shortcuts, global pooling, a linear head.
* ``unet3d``: bench/make_models.py's 3D UNet at width 2 on 1x24^3, through the argmax
  wrapper with a fixed mask (its head's bias shifted so that both classes win voxels, as in
  make_fixtures.py) and through the mask wrapper on a 6^3 region:
  max-pool down, trilinear upsampling, concatenated skips.
* ``windows2d``: the window edge cases on 3x30x30: a strided conv, an average pool counting
  its padding, a dilated conv, a grouped conv, a max-pool with ceil_mode on an odd size,
  nearest upsampling, LeakyReLU, a softmax over channels, then a global mean and a linear
  head.
* ``transposed2d``: the transposed convolutions of UNet decoders on 3x24x24, after strided
  convs and a batch norm: kernel equal to stride, kernel 3 stride 2 with padding and
  output_padding (on a concatenated skip), a dilated grouped one, and stride 3 over kernel 2
  (outputs no input reaches), then global means and a linear head.

Occlusion strides that do not divide the free length put windows at the border; feature masks
include a group in two separate pieces (its bounding box is most of the image). Scores stay
small (heads without bias, a region instead of the whole volume) and most baselines lie far
from the input's [0, 1], so that the maps stand well above float32 rounding of the scores
(the tolerance is 1e-4 of the map's scale).

Writes the models, inputs, masks, Captum's maps and ``cases.json`` (the shape
tests/common/captum.rs reads, with a tolerance of 1e-4 of the map's scale).

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install captum==0.9.0 onnx onnxscript   # once
    ~/.cache/esegeta/venv/bin/python tools/make_incremental_fixtures.py

Seeded, float32, CPU, one thread.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import FeatureAblation, Occlusion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
import make_fixtures as mf  # noqa: E402
from make_onnx_fixtures import ResNetLike, randomise_norms  # noqa: E402
from make_models import UNet3d  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "incremental"
TOLERANCE = 1e-4


class Windows2d(nn.Module):
    """Every window form incremental evaluation distinguishes, on 3x30x30."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, stride=2, padding=1)                 # 15x15
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.dilated = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)                # 8x8
        self.up = nn.Upsample(scale_factor=2, mode="nearest")               # 16x16
        self.mix = nn.Conv2d(6, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = F.relu(self.down(x))
        h = self.dilated(self.avg(h))
        h = F.leaky_relu(self.grouped(h), 0.1)
        h = torch.softmax(self.mix(self.up(self.pool(h))), 1)
        return self.fc(h.mean((2, 3)))


class Transposed2d(nn.Module):
    """The transposed convolution forms incremental evaluation handles, on 3x24x24."""

    def __init__(self):
        super().__init__()
        self.down1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)                  # 12x12
        self.bn = nn.BatchNorm2d(4)
        self.down2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)                  # 6x6
        self.up_even = nn.ConvTranspose2d(6, 4, 2, stride=2)                  # 12x12
        self.up_crop = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.dilated = nn.ConvTranspose2d(4, 4, 3, padding=2, dilation=2, groups=2)
        self.gappy = nn.ConvTranspose2d(6, 2, 2, stride=3, padding=1)         # 15x15
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        e = F.relu(self.bn(self.down1(x)))
        m = F.relu(self.down2(e))
        u = F.relu(self.up_even(m))
        h = self.dilated(F.relu(self.up_crop(torch.cat([u, e], 1))))        # 24x24
        g = self.gappy(m)
        return self.fc(torch.cat([h.mean((2, 3)), g.mean((2, 3))], 1))


def zero_head_bias(model):
    """Scores near zero: their float32 rounding stays far below the map's scale (a score
    changes by a fraction of itself when one window of the image is occluded)."""
    with torch.no_grad():
        model.fc.bias.zero_()
    return model


def export(model, example, name):
    path = OUT / f"{name}.onnx"
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, optimize=False,
                          dynamic_shapes=({0: batch},), verbose=False)
    return path.name


def save(name, array):
    np.save(OUT / name, np.ascontiguousarray(array), allow_pickle=False)
    return name


def grid_mask(shape, cells):
    """Integer labels of a grid with `cells` cells per spatial axis, shared by the channels."""
    axes = [np.arange(n) * c // n for n, c in zip(shape, cells)]
    labels = np.zeros(shape, dtype=np.int64)
    for i, a in enumerate(axes):
        labels = labels * cells[i] + a.reshape([-1 if j == i else 1 for j in range(len(shape))])
    return labels


def split_group(labels):
    """Moves the first cell's label onto the last cell too: one feature in two far pieces."""
    labels = labels.copy()
    last = labels.max()
    labels[labels == last] = 0
    return labels


def case(name, model, inp, method, params, target, **extra):
    c = {"name": name, "model": model, "input": inp, "method": method, "params": params,
         "target": target, "task": "classification", "wrapper": None, "mask": None,
         "fixed_mask": False, "layer": None, "expected": f"{name}.npy", "extras": {},
         "check": "exact", "tolerance": TOLERANCE}
    c.update(extra)
    return c


def captum_map(c, modules, tensors):
    module = modules[c["model"]]
    x = tensors[c["input"]]
    if c["wrapper"] == "mask":
        fn = mf.MaskScores(module, tensors[c["mask"]])
    elif c["wrapper"] == "argmax":
        fn = mf.ArgmaxScores(module, x if c["fixed_mask"] else None)
    else:
        fn = module
    p = dict(c["params"])
    if c["method"] == "captum.occlusion":
        algo = Occlusion(fn)
        return algo.attribute(x, sliding_window_shapes=tuple(p["sliding_window_shapes"]),
                              strides=tuple(p["strides"]), baselines=p.get("baselines", 0.0),
                              target=c["target"])
    mask = torch.from_numpy(np.load(OUT / p["feature_mask"]))
    return FeatureAblation(fn).attribute(x, feature_mask=mask, baselines=p.get("baselines", 0.0),
                                         target=c["target"])


def main():
    mf.start_fixtures(OUT)
    gen = torch.Generator().manual_seed(0)
    modules, tensors, cases = {}, {}, []

    torch.manual_seed(1)
    resnet = zero_head_bias(randomise_norms(ResNetLike(), 1).eval())
    x = torch.rand((1, 3, 64, 64), generator=gen)
    modules[export(resnet, x, "resnet_like")] = resnet
    tensors[save("resnet_like_x.npy", x.numpy())] = x
    save("resnet_like_grid.npy", grid_mask((64, 64), (8, 8))[None, None])
    save("resnet_like_split.npy", split_group(grid_mask((64, 64), (4, 4)))[None, None])
    cases += [
        case("resnet_occlusion", "resnet_like.onnx", "resnet_like_x.npy", "captum.occlusion",
             {"sliding_window_shapes": [3, 8, 8], "strides": [3, 6, 6]}, 2),
        case("resnet_occlusion_baseline", "resnet_like.onnx", "resnet_like_x.npy",
             "captum.occlusion",
             {"sliding_window_shapes": [1, 12, 10], "strides": [1, 9, 7], "baselines": 2.0}, 0),
        case("resnet_feature_ablation", "resnet_like.onnx", "resnet_like_x.npy",
             "captum.feature_ablation",
             {"feature_mask": "resnet_like_grid.npy", "baselines": -1.0}, 2),
        case("resnet_feature_ablation_split", "resnet_like.onnx", "resnet_like_x.npy",
             "captum.feature_ablation",
             {"feature_mask": "resnet_like_split.npy", "baselines": 0.25}, 1),
    ]

    torch.manual_seed(5)
    unet = randomise_norms(UNet3d(c=2), 5).eval()
    v = torch.rand((1, 1, 24, 24, 24), generator=gen)
    counts, margin = mf.balance_argmax(unet, v)
    print(f"unet3d argmax class counts {counts}, min |logit gap| {margin:.3g}")
    modules[export(unet, v, "unet3d")] = unet
    tensors[save("unet3d_x.npy", v.numpy())] = v
    save("unet3d_grid.npy", grid_mask((24, 24, 24), (3, 3, 3))[None, None])
    # The argmax mask is computed once, on the unperturbed input: recomputed on every copy, a
    # voxel within float rounding of a tie could pick its class differently in the two tools.
    seg = {"task": "segmentation", "wrapper": "argmax", "fixed_mask": True}
    # Scores summed over a small region stay small, so float32 rounding of a score stays well
    # below 1e-4 of the map; the argmax scores sum all 13824 voxels.
    roi = np.zeros((1, 1, 24, 24, 24), dtype=np.float32)
    roi[..., 9:15, 9:15, 9:15] = 1
    save("unet3d_roi.npy", roi)
    tensors["unet3d_roi.npy"] = torch.from_numpy(roi)
    roi_seg = {"task": "segmentation", "wrapper": "mask", "mask": "unet3d_roi.npy"}
    cases += [
        case("unet3d_roi_occlusion", "unet3d.onnx", "unet3d_x.npy", "captum.occlusion",
             {"sliding_window_shapes": [1, 6, 6, 6], "strides": [1, 5, 5, 5]}, 1, **roi_seg),
        case("unet3d_argmax_feature_ablation", "unet3d.onnx", "unet3d_x.npy",
             "captum.feature_ablation", {"feature_mask": "unet3d_grid.npy"}, 0, **seg),
    ]

    torch.manual_seed(3)
    windows = zero_head_bias(Windows2d().eval())
    w = torch.rand((1, 3, 30, 30), generator=gen)
    modules[export(windows, w, "windows2d")] = windows
    tensors[save("windows2d_x.npy", w.numpy())] = w
    save("windows2d_split.npy", split_group(grid_mask((30, 30), (5, 5)))[None, None])
    cases += [
        case("windows2d_occlusion", "windows2d.onnx", "windows2d_x.npy", "captum.occlusion",
             {"sliding_window_shapes": [3, 5, 5], "strides": [3, 4, 4], "baselines": -2.0}, 1),
        case("windows2d_feature_ablation_split", "windows2d.onnx", "windows2d_x.npy",
             "captum.feature_ablation", {"feature_mask": "windows2d_split.npy"}, 2),
    ]

    torch.manual_seed(4)
    transposed = zero_head_bias(randomise_norms(Transposed2d(), 4).eval())
    t = torch.rand((1, 3, 24, 24), generator=gen)
    modules[export(transposed, t, "transposed2d")] = transposed
    tensors[save("transposed2d_x.npy", t.numpy())] = t
    save("transposed2d_split.npy", split_group(grid_mask((24, 24), (4, 4)))[None, None])
    cases += [
        case("transposed2d_occlusion", "transposed2d.onnx", "transposed2d_x.npy",
             "captum.occlusion",
             {"sliding_window_shapes": [3, 4, 4], "strides": [3, 3, 3], "baselines": -1.0}, 0),
        case("transposed2d_feature_ablation_split", "transposed2d.onnx", "transposed2d_x.npy",
             "captum.feature_ablation", {"feature_mask": "transposed2d_split.npy"}, 2),
    ]

    for c in cases:
        with torch.no_grad():
            attr = captum_map(c, modules, tensors).detach().float()
        assert torch.isfinite(attr).all() and float(attr.abs().max()) > 0, c["name"]
        save(c["expected"], attr.numpy())
        print(f"{c['name']}: max|map| {float(attr.abs().max()):.3g}")
    (OUT / "cases.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"argmax: smallest top-2 logit gap {mf.ARGMAX_STATS['min_gap']:.3g}")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"tests/fixtures/incremental: {total / 1024:.0f} KB")


if __name__ == "__main__":
    main()
