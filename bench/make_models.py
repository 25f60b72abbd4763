"""Makes the benchmark's models and inputs in bench/models/ (ignored by git; the bench command
runs this when they are missing).

- resnet18.pt: a ResNet-18 (He et al., 2016: BasicBlocks [2, 2, 2, 2], batch norm, 10 classes),
  randomly initialised with a fixed seed, in eval mode; input image.npy, 1x3x224x224 in [0, 1].
- unet3d.pt: a 3-level 3D UNet with two output classes (logits), explained through the argmax
  wrapper; input volume.npy, 1x1x64x64x64 (the first synthetic angiogram of configs/vessels).
- The vessel UNet of configs/vessels/models/unet.pt is used as it is, with the threshold
  wrapper, on the same volume.
- Masks of 64 feature groups: image_groups.npy (an 8x8 grid of 28x28 squares over all
  channels) and volume_groups.npy (a 4x4x4 grid of 16^3 cubes).

Each model is also exported to ONNX (torch.onnx.export(..., dynamo=True, optimize=False), with
a dynamic batch) when the onnx and onnxscript packages are installed, for esegeta's graph
methods (guided backprop, LayerGradCam, incremental occlusion and feature ablation).

Usage: python bench/make_models.py [--force]
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
VOLUME = HERE.parent / "configs" / "vessels" / "vessels_00.nii.gz"


class BasicBlock(nn.Module):
    """ReLUs are modules (not F.relu), so that Captum's GuidedBackprop hooks every one, as
    esegeta's guided backprop rule applies to every Relu node."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(x.mean((2, 3)))


def double_conv(cin, cout):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(),
                         nn.Conv3d(cout, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU())


class UNet3d(nn.Module):
    """3 levels (64^3 -> 32^3 -> 16^3), max-pool down, trilinear up, two classes."""

    def __init__(self, c=8, classes=2):
        super().__init__()
        self.enc1, self.enc2 = double_conv(1, c), double_conv(c, 2 * c)
        self.bottom = double_conv(2 * c, 4 * c)
        self.dec2, self.dec1 = double_conv(6 * c, 2 * c), double_conv(3 * c, c)
        self.head = nn.Conv3d(c, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool3d(e1, 2))
        b = self.bottom(F.max_pool3d(e2, 2))
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="trilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up(b), e2], 1))
        d1 = self.dec1(torch.cat([up(d2), e1], 1))
        return self.head(d1)


def randomise_batch_norm(model, gen):
    """Running statistics that are not the identity, as in a trained network."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def export(model, example, name):
    traced = torch.jit.trace(model, example)
    traced.save(str(MODELS / f"{name}.pt"))
    with torch.no_grad():
        twice = torch.cat([example, example])
        assert torch.allclose(traced(twice), model(twice), atol=1e-5), name
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        print(f"{name}: no onnx/onnxscript, ONNX export skipped")
        return
    batch = torch.export.Dim("batch", min=1, max=1024)
    # Unoptimised, as tools/export_model.py exports: the optimiser folds batch norm into the
    # convolution before it, which changes the rounding of every output, and through the
    # argmax wrapper's near-ties the maps.
    program = torch.onnx.export(model, (example,), dynamo=True, optimize=False,
                                dynamic_shapes=({0: batch},), verbose=False)
    program.save(str(MODELS / f"{name}.onnx"), external_data=True)


def load_volume():
    import nibabel as nib
    data = np.asarray(nib.load(str(VOLUME)).get_fdata(), dtype=np.float32)
    return data[None, None]


def grid_labels(shape, cells):
    """Integer labels of a regular grid: `cells` cells along each axis of `shape`."""
    axes = [np.arange(n) * c // n for n, c in zip(shape, cells)]
    labels = np.zeros(shape, dtype=np.int64)
    for i, a in enumerate(axes):
        stride = int(np.prod(cells[i + 1:]))
        labels += a.reshape([-1 if j == i else 1 for j in range(len(shape))]) * stride
    return labels


# Bumped when the models change, so that an older bench/models/ is made again.
VERSION = "3: module ReLUs in the ResNet, unoptimised ONNX"


def eager(name, pt):
    """The PyTorch module of a benchmark model with the weights of its TorchScript file, for
    Captum's methods that hook modules (guided backprop, layer methods)."""
    if name == "resnet18":
        model = ResNet18()
    elif name == "unet3d":
        model = UNet3d()
    elif name == "vessel_unet":
        sys.path.insert(0, str(HERE.parent / "tools"))
        import train_vessels as tv
        model = tv.Probabilities(tv.make_net("unet"))
    else:
        raise ValueError(name)
    model.load_state_dict(torch.jit.load(str(pt)).state_dict())
    return model.eval()


def main(force=False):
    MODELS.mkdir(exist_ok=True)
    stamp = MODELS / "VERSION"
    if not stamp.exists() or stamp.read_text() != VERSION:
        force = True
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    if force or not (MODELS / "resnet18.pt").exists():
        image = torch.rand((1, 3, 224, 224), generator=gen)
        np.save(MODELS / "image.npy", image.numpy())
        resnet = ResNet18().eval()
        with torch.no_grad():
            randomise_batch_norm(resnet, gen)
        export(resnet, image, "resnet18")
        np.save(MODELS / "image_groups.npy", grid_labels((1, 224, 224), (1, 8, 8))[None])
    if force or not (MODELS / "unet3d.pt").exists():
        volume = torch.from_numpy(load_volume())
        np.save(MODELS / "volume.npy", volume.numpy())
        unet = UNet3d().eval()
        with torch.no_grad():
            randomise_batch_norm(unet, gen)
        export(unet, volume, "unet3d")
        np.save(MODELS / "volume_groups.npy", grid_labels((1, 64, 64, 64), (1, 4, 4, 4))[None])
    stamp.write_text(VERSION)
    print(f"models and inputs in {MODELS}")


if __name__ == "__main__":
    main(force="--force" in sys.argv)
