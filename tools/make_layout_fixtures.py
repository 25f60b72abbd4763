"""Captum references for the layout esegeta hands TorchScript models (host/src/model/torchscript.rs).

What it does
------------
On CPU esegeta gives a TorchScript model its 4-D inputs in channels-last, and falls back to
the default layout for a model that cannot take it. This script traces a small classifier
that `view`s a multi-channel feature map (which fails on a channels-last tensor) and one that
flattens with `flatten` (which takes either layout), and runs Captum 0.9's Occlusion (forward
passes) and IntegratedGradients (gradients, batched) on both, into ``tests/fixtures/layout/``
with ``cases.json`` (the shape tests/common/captum.rs reads). tests/layout.rs checks that the
maps equal Captum's and that the first model's fallback is logged.

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install captum==0.9.0   # once
    ~/.cache/esegeta/venv/bin/python tools/make_layout_fixtures.py

Seeded, float32, CPU, one thread.
"""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import IntegratedGradients, Occlusion

from make_fixtures import start_fixtures
from make_incremental_fixtures import case

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "layout"
TOLERANCE = 1e-5


class Classifier(nn.Module):
    """Conv, ReLU, pooled 3x3 feature map flattened by `view` or `flatten`, linear head."""

    def __init__(self, use_view):
        super().__init__()
        self.use_view = use_view
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.fc = nn.Linear(36, 3)

    def forward(self, x):
        h = self.pool(F.relu(self.conv(x)))
        h = h.view(h.shape[0], -1) if self.use_view else torch.flatten(h, 1)
        return self.fc(h)


def main():
    start_fixtures(OUT)
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    np.save(OUT / "x.npy", x.numpy())
    params = {"sliding_window_shapes": [3, 4, 4], "strides": [3, 2, 2]}
    cases = []
    for name, use_view in [("view", True), ("flatten", False)]:
        torch.manual_seed(1)
        model = Classifier(use_view).eval()
        torch.jit.trace(model, x).save(str(OUT / f"{name}.pt"))
        with torch.no_grad():
            attr = Occlusion(model).attribute(x, sliding_window_shapes=(3, 4, 4),
                                              strides=(3, 2, 2), target=1)
        np.save(OUT / f"{name}_occlusion.npy", attr.numpy())
        cases.append(case(f"{name}_occlusion", f"{name}.pt", "x.npy", "captum.occlusion",
                          params, 1, tolerance=TOLERANCE))
        attr = IntegratedGradients(model).attribute(x, target=1, n_steps=16)
        np.save(OUT / f"{name}_integrated_gradients.npy", attr.detach().numpy())
        cases.append(case(f"{name}_integrated_gradients", f"{name}.pt", "x.npy",
                          "captum.integrated_gradients", {"n_steps": 16}, 1,
                          tolerance=TOLERANCE))
        print(f"{name}: max|map| {float(attr.abs().max()):.3g}")
    (OUT / "cases.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    main()
