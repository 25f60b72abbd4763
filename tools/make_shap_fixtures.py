"""Build the SHAP reference fixtures (tests/fixtures/shap/) for the shap.* methods.

What it does
------------
Runs shap 0.51's explainers on two small, seeded ReLU CNNs with max pooling (2D: 3x16x16 in,
4 classes; 3D: 1x8x8x8 in, 3 classes), each built from nn.Module layers (shap's DeepExplainer
hooks act on modules only) and exported both as ONNX (``torch.onnx.export(..., dynamo=True)``,
dynamic batch) and TorchScript, and saves every map shap returns for the explained class as
float32 ``.npy``, with a ``manifest.json`` (one entry per case: model, input, background,
method, esegeta parameters, target, map, shap's wall time):

* ``shap.GradientExplainer`` (expected gradients) with a fixed ``rseed``: esegeta draws
  shap's own random numbers (numpy's legacy MT19937), so these maps must agree exactly; and a
  high-sample reference (another seed) that the 200- and 2000-sample maps converge to.
* ``shap.DeepExplainer`` (DeepLIFT rescale against every background example, averaged), 2D
  and 3D, and the 2D model ending in an ``nn.Softmax`` (which shap treats elementwise).
* ``shap.PartitionExplainer`` with ``shap.maskers.Image`` (``blur(k,k)`` and a constant) on
  the 2D model, which shap sees as an (H, W, C) image; ``outputs=[target]`` so that shap's
  queue orders its work by the explained class alone, as esegeta's does.

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install shap opencv-python-headless onnx onnxscript \
        torch==2.13.0          # once; pin torch, or pip upgrades it
    ~/.cache/esegeta/venv/bin/python tools/make_shap_fixtures.py

Seeded, float32, CPU, one thread; about a minute.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import shap
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "shap"
SIZE_LIMIT = 1024 * 1024


class Cnn(nn.Module):
    """conv-ReLU-maxpool twice, then two linear layers; every activation its own module."""

    def __init__(self, dims, channels, size, classes, softmax=False):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        flat = 8 * (size // 4) ** dims
        layers = [conv(channels, 6, 3, padding=1), nn.ReLU(), pool(2),
                  conv(6, 8, 3, padding=1), nn.ReLU(), pool(2), nn.Flatten(),
                  nn.Linear(flat, 16), nn.ReLU(), nn.Linear(16, classes)]
        if softmax:
            layers.append(nn.Softmax(dim=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class GapCnn(nn.Module):
    """conv-ReLU-maxpool-conv-ReLU, global average pooling, linear: any image size, so that the
    partition tree meets odd widths (shap halves them unevenly)."""

    def __init__(self, classes=4):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x):
        return self.net(x)


class SkipCnn(nn.Module):
    """A UNet-like skip: a ReLU's output feeds a max-pool and, past it, a concatenation, so that
    shap's hooks replace only their own share of its gradient."""

    def __init__(self, classes=3):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv3, self.relu3 = nn.Conv2d(8, 6, 3, padding=1), nn.ReLU()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes))

    def forward(self, x):
        a = self.relu1(self.conv1(x))
        b = self.up(self.relu2(self.conv2(self.pool(a))))
        return self.head(self.relu3(self.conv3(torch.cat([a, b], 1))))


class Column(nn.Module):
    """One output column of a model, `[B, 1]`: shap's gradient explainer then explains it
    alone instead of every class."""

    def __init__(self, model, target):
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x):
        return self.model(x)[:, self.target : self.target + 1]


def smooth_images(batch, channels, spatial, seed):
    """Low-frequency blobs plus a little noise in [0, 1]: varied outputs for an untrained net,
    and blurring changes them."""
    g = torch.Generator().manual_seed(seed)
    dims = len(spatial)
    low = torch.randn((batch, channels) + (4,) * dims, generator=g)
    mode = "bilinear" if dims == 2 else "trilinear"
    up = F.interpolate(low, size=spatial, mode=mode, align_corners=False)
    x = torch.sigmoid(2 * up + 0.3 * torch.randn(up.shape, generator=g))
    return x.contiguous()


def save(name, array):
    np.save(OUT / name, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return name


def export(model, example, stem):
    """`stem`.onnx (dynamic batch) and `stem`.pt, each checked against the module."""
    path = OUT / f"{stem}.onnx"
    for p in (path, path.with_name(path.name + ".data")):
        p.unlink(missing_ok=True)
    batch = {0: torch.export.Dim("batch", min=1, max=1024)}
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["x"],
                          dynamic_shapes=(batch,), external_data=False)
        traced = torch.jit.trace(model, example)
    traced.save(str(OUT / f"{stem}.pt"))
    import onnx  # noqa: F401  (the export needs it; fail early when missing)
    with torch.no_grad():
        for b in (1, 5):
            x = torch.rand((b,) + tuple(example.shape[1:]))
            assert torch.allclose(traced(x), model(x), atol=1e-6)
    return f"shap/{stem}.onnx", f"shap/{stem}.pt"


class Fixtures:
    def __init__(self):
        self.cases = []

    def add(self, name, model, x, background, method, params, target, values, seconds):
        self.cases.append({
            "name": name, "model": model, "input": x, "background": background,
            "method": method, "params": params, "target": target,
            "map": save(f"{name}.npy", values), "shape": list(values.shape),
            "max_abs": float(np.abs(values).max()), "shap_seconds": round(seconds, 3),
        })


def gradient_cases(fx, model, onnx, ts, x, bg, x_name, bg_name, target, prefix):
    col = Column(model, target).eval()
    for nsamples, rseed, tag in ((200, 42, "200"), (2000, 42, "2000"), (20000, 7, "ref20000")):
        if tag == "ref20000" and prefix != "cnn2d":
            continue
        t = time.time()
        e = shap.GradientExplainer(col, bg)
        values = np.asarray(e.shap_values(x, nsamples=nsamples, rseed=rseed))[..., 0]
        seconds = time.time() - t
        params = {"background": bg_name, "nsamples": nsamples, "rseed": rseed}
        fx.add(f"{prefix}_gradient_{tag}", onnx, x_name, bg_name, "shap.gradient_explainer",
               params, target, values, seconds)
    # The same draws explain through TorchScript too.
    first = next(c for c in fx.cases if c["name"] == f"{prefix}_gradient_200")
    fx.cases.append(dict(first, name=f"{prefix}_gradient_torchscript", model=ts))


def deep_case(fx, model, onnx, x, bg, x_name, bg_name, target, name):
    t = time.time()
    e = shap.DeepExplainer(model, bg)
    values = np.asarray(e.shap_values(x, check_additivity=True))[..., target]
    seconds = time.time() - t
    fx.add(name, onnx, x_name, bg_name, "shap.deep_explainer", {"background": bg_name}, target,
           values, seconds)


def partition_case(fx, model, onnx, x, x_name, target, mask_value, max_evals, name):
    """shap sees (H, W, C) images; the map comes back to (C, H, W)."""
    hwc = x.permute(0, 2, 3, 1).numpy()

    def f(images):
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)).numpy()

    masker = shap.maskers.Image(mask_value, hwc.shape[1:])
    explainer = shap.explainers.Partition(f, masker)
    np.random.seed(0)  # shap breaks ties in its queue with np.random.randn
    t = time.time()
    result = explainer(hwc, max_evals=max_evals, batch_size=10, outputs=np.array([target]),
                       silent=True)
    seconds = time.time() - t
    values = np.moveaxis(result.values[..., 0], -1, 1)
    masker_param = mask_value if isinstance(mask_value, str) else float(mask_value)
    params = {"masker": masker_param, "max_evals": max_evals}
    fx.add(name, onnx, x_name, None, "shap.partition_explainer", params, target, values, seconds)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    fx = Fixtures()

    # 2D
    torch.manual_seed(1)
    m2 = Cnn(2, 3, 16, 4).eval()
    x2 = smooth_images(2, 3, (16, 16), 2)
    bg2 = smooth_images(8, 3, (16, 16), 3)
    onnx2, ts2 = export(m2, x2, "cnn2d")
    save("cnn2d_x.npy", x2)
    save("cnn2d_x1.npy", x2[:1])
    save("cnn2d_bg.npy", bg2)
    save("cnn2d_bg1.npy", bg2[:1])
    with torch.no_grad():
        print("cnn2d outputs", m2(x2).numpy())
    target2 = 1
    gradient_cases(fx, m2, onnx2, ts2, x2, bg2, "shap/cnn2d_x.npy", "shap/cnn2d_bg.npy", target2,
                   "cnn2d")
    # One background example: numpy draws no index for it (a choice of one).
    e = shap.GradientExplainer(Column(m2, target2), bg2[:1])
    t = time.time()
    values = np.asarray(e.shap_values(x2[:1], nsamples=64, rseed=3))[..., 0]
    fx.add("cnn2d_gradient_bg1", onnx2, "shap/cnn2d_x1.npy", "shap/cnn2d_bg1.npy",
           "shap.gradient_explainer",
           {"background": "shap/cnn2d_bg1.npy", "nsamples": 64, "rseed": 3}, target2, values,
           time.time() - t)
    deep_case(fx, m2, onnx2, x2, bg2, "shap/cnn2d_x.npy", "shap/cnn2d_bg.npy", target2,
              "cnn2d_deep")
    deep_case(fx, m2, onnx2, x2, bg2, "shap/cnn2d_x.npy", "shap/cnn2d_bg.npy", 3,
              "cnn2d_deep_t3")
    m2s = Cnn(2, 3, 16, 4, softmax=True).eval()
    m2s.load_state_dict(m2.state_dict())
    onnx2s, _ = export(m2s, x2, "cnn2d_softmax")
    (OUT / "cnn2d_softmax.pt").unlink()
    deep_case(fx, m2s, onnx2s, x2, bg2, "shap/cnn2d_x.npy", "shap/cnn2d_bg.npy", target2,
              "cnn2d_softmax_deep")
    x1 = x2[:1]
    for mask_value, max_evals, name in (("blur(4,4)", 500, "blur4"), ("blur(3,5)", 300, "blur35"),
                                        (0.5, 500, "const05"), (0.0, 2000, "const0_2000")):
        partition_case(fx, m2, onnx2, x1, "shap/cnn2d_x1.npy", target2, mask_value, max_evals,
                       f"cnn2d_partition_{name}")

    # Odd widths: a 3x15x13 image through a size-agnostic CNN.
    torch.manual_seed(7)
    mg = GapCnn().eval()
    xo = smooth_images(1, 3, (15, 13), 8)
    onnxg, _ = export(mg, xo.repeat(2, 1, 1, 1), "gapcnn2d")
    (OUT / "gapcnn2d.pt").unlink()
    save("gapcnn2d_x.npy", xo)
    for mask_value, max_evals, name in (("blur(3,5)", 400, "blur35"), (0.2, 600, "const02")):
        partition_case(fx, mg, onnxg, xo, "shap/gapcnn2d_x.npy", 2, mask_value, max_evals,
                       f"gapcnn2d_partition_{name}")

    # A skip connection (deep explainer).
    torch.manual_seed(9)
    ms = SkipCnn().eval()
    onnxs, _ = export(ms, x2, "skipcnn2d")
    (OUT / "skipcnn2d.pt").unlink()
    deep_case(fx, ms, onnxs, x2, bg2, "shap/cnn2d_x.npy", "shap/cnn2d_bg.npy", 0,
              "skipcnn2d_deep")

    # 3D
    torch.manual_seed(4)
    m3 = Cnn(3, 1, 8, 3).eval()
    x3 = smooth_images(1, 1, (8, 8, 8), 5)
    bg3 = smooth_images(6, 1, (8, 8, 8), 6)
    onnx3, ts3 = export(m3, x3.repeat(2, 1, 1, 1, 1), "cnn3d")
    save("cnn3d_x.npy", x3)
    save("cnn3d_bg.npy", bg3)
    with torch.no_grad():
        print("cnn3d outputs", m3(x3).numpy())
    gradient_cases(fx, m3, onnx3, ts3, x3, bg3, "shap/cnn3d_x.npy", "shap/cnn3d_bg.npy", 2,
                   "cnn3d")
    deep_case(fx, m3, onnx3, x3, bg3, "shap/cnn3d_x.npy", "shap/cnn3d_bg.npy", 2, "cnn3d_deep")

    (OUT / "manifest.json").write_text(json.dumps(fx.cases, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(fx.cases)} cases, tests/fixtures/shap: {total / 1024:.0f} KB")
    assert total < SIZE_LIMIT, "the shap fixtures grew past 1 MB"


if __name__ == "__main__":
    sys.exit(main())
