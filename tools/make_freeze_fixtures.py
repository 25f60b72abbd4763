"""Build the fixtures of `--freeze` (tests/fixtures/freeze/): batch-normed CNNs whose frozen
copy (torch.jit.freeze + optimize_for_inference, host/src/model/frozen.rs) differs from the
plain module, with Captum's maps of the plain PyTorch model as the reference.

What it does
------------
Two seeded models of Conv-BatchNorm-ReLU blocks (random weights, and batch-norm running
statistics, scales and shifts away from the identity, so that folding them into the
convolutions changes the arithmetic), in eval mode, traced to TorchScript:

* ``bn2d.pt``: 3x32x32 images, 5 classes (``x2d.npy``, one image in [0, 1]);
* ``bn3d.pt``: 1x12x12x12 volumes, 3 classes (``x3d.npy``).

For each, Captum 0.8's ``Occlusion`` (forward passes only: what a frozen copy serves) and
``Saliency`` (gradients: what it must not serve) of the plain PyTorch module, target 1:
``bn2d_occlusion.npy`` (window 3x8x8, strides 4), ``bn3d_occlusion.npy`` (window 1x4x4x4,
strides 4), ``bn2d_saliency.npy`` and ``bn3d_saliency.npy`` (``abs=True``, Captum's default),
and each occlusion again in float64 (``*_occlusion_f64.npy``), which tells float32 rounding
from error.

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install captum torch==2.13.0
    ~/.cache/esegeta/venv/bin/python tools/make_freeze_fixtures.py

Seeded, float32, CPU, one thread; a few seconds.
"""

from pathlib import Path

import numpy as np
import torch
from captum.attr import Occlusion, Saliency
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "freeze"


def block(conv, norm, cin, cout):
    return [conv(cin, cout, 3, padding=1), norm(cout), nn.ReLU()]


class BnCnn(nn.Module):
    """Two Conv-BN-ReLU blocks, global average pooling, a linear head."""

    def __init__(self, conv, norm, pool, cin, classes):
        super().__init__()
        self.features = nn.Sequential(*block(conv, norm, cin, 8), *block(conv, norm, 8, 16))
        self.pool = pool(1)
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def unusual_norms(model, generator):
    """Running statistics and affine terms away from 0 and 1, as a trained network has."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.25)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)
    # A head that reads the pooled features loudly, so that occluding a window moves the
    # scores well above float32's rounding of them.
    model.head.weight.data.mul_(20.0)


def build(name, conv, norm, pool, shape, classes, window, seed):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = BnCnn(conv, norm, pool, shape[1], classes).eval()
    with torch.no_grad():
        unusual_norms(model, generator)
    x = torch.rand(shape, generator=generator)
    torch.jit.trace(model, x).save(str(OUT / f"{name}.pt"))
    np.save(OUT / f"x{name[2:]}.npy", x.numpy())
    occlusion = Occlusion(model).attribute(
        x, target=1, sliding_window_shapes=window, strides=4, baselines=0.0
    )
    np.save(OUT / f"{name}_occlusion.npy", occlusion.detach().numpy())
    saliency = Saliency(model).attribute(x.clone().requires_grad_(True), target=1)
    np.save(OUT / f"{name}_saliency.npy", saliency.detach().numpy())
    # The same occlusion in float64, which tells float32 rounding (plain or frozen) from error.
    double = Occlusion(model.double()).attribute(
        x.double(), target=1, sliding_window_shapes=window, strides=4, baselines=0.0
    )
    np.save(OUT / f"{name}_occlusion_f64.npy", double.detach().numpy())


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    build("bn2d", nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d, (1, 3, 32, 32), 5,
          (3, 8, 8), 0)
    build("bn3d", nn.Conv3d, nn.BatchNorm3d, nn.AdaptiveAvgPool3d, (1, 1, 12, 12, 12), 3,
          (1, 4, 4, 4), 1)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
