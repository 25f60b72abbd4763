"""References for LayerGradCam's `upsample_to_input` option: Captum's own GradCAM maps from
tests/fixtures/layers (made by make_layer_fixtures.py) resampled to the input's spatial size
by Captum's `LayerAttribution.interpolate`, bilinear for 2D layers and trilinear for 3D.

Writes tests/fixtures/gradcam_upsample/<case>.npy. Run: `. tools/env.sh && python
tools/make_gradcam_upsample_fixtures.py`.
"""

import json
from pathlib import Path

import numpy as np
import torch
from captum.attr import LayerAttribution

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ROOT / "tests/fixtures/layers"
OUT = ROOT / "tests/fixtures/gradcam_upsample"

# case in layers/cases.json -> interpolation mode Captum is asked for
CASES = {
    "c2d_layer_grad_cam_conv2": "bilinear",
    "s3d_argmax_layer_grad_cam_mid": "trilinear",
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = {c["name"]: c for c in json.loads((LAYERS / "cases.json").read_text())}
    for name, mode in CASES.items():
        case = cases[name]
        cam = torch.from_numpy(np.load(LAYERS / case["expected"]))
        x = np.load(LAYERS / case["input"])
        up = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode=mode)
        np.save(OUT / f"{name}.npy", up.numpy().astype(np.float32))
        print(f"{name}: {tuple(cam.shape)} -> {tuple(up.shape)} ({mode}), "
              f"max|map| {float(up.abs().max()):.4g}")


if __name__ == "__main__":
    main()
