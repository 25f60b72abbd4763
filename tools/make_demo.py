"""Makes the demo of the README's `make demo`: a small CNN that tells whether a synthetic
scan slice holds a lesion, and one held-out scan with a lesion to explain.

The scans are 64x64 slices in [0, 1]: a smooth elliptical organ on a dark background with a
bias field and noise; class 1 adds a small bright round lesion inside the organ, and some
class 0 scans carry a bright blob outside it, so the model must look inside. Trained on CPU
in well under a minute; deterministic.

    ~/.cache/esegeta/venv/bin/python tools/make_demo.py

writes configs/demo/lesion_classifier.pt (TorchScript), scan_with_lesion.png and its lesion
mask scan_with_lesion_lesion.npy, and prints the held-out accuracy and how much of the
Integrated Gradients map (Captum) falls on the lesion.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

SIZE = 64
OUT = Path(__file__).resolve().parent.parent / "configs" / "demo"


def grid():
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return y, x


def organ(rng):
    """A smooth ellipse with a bias field: the background anatomy, and its mask."""
    y, x = grid()
    cy, cx = rng.uniform(28, 36, 2)
    ry, rx = rng.uniform(18, 26, 2)
    inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
    body = 0.45 / (1 + np.exp((inside - 1) * 12))
    bias = 1 + 0.25 * np.sin(x / rng.uniform(12, 20) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(12, 20))
    return body * bias, inside < 0.75


def blob(rng, where):
    """A bright round blob of radius 3-6 px centred somewhere in `where`; image and mask."""
    y, x = grid()
    ys, xs = np.nonzero(where)
    k = rng.integers(len(ys))
    r = rng.uniform(3, 6)
    d2 = (y - ys[k]) ** 2 + (x - xs[k]) ** 2
    return 0.45 * np.exp(-d2 / (2 * (r / 1.6) ** 2)), d2 <= r * r


def scan(rng, lesion):
    image, inside = organ(rng)
    mask = np.zeros((SIZE, SIZE), bool)
    if lesion:
        spot, mask = blob(rng, inside)
        image = image + spot
    elif rng.random() < 0.5:
        spot, _ = blob(rng, ~organ_margin(inside))
        image = image + spot
    image = image + rng.normal(0, 0.03, image.shape)
    return np.clip(image, 0, 1).astype(np.float32), mask


def organ_margin(inside):
    """The organ grown by a few pixels, so distractors stay clearly outside it."""
    grown = inside.copy()
    for _ in range(8):
        grown = grown | np.roll(grown, 1, 0) | np.roll(grown, -1, 0) | np.roll(grown, 1, 1) | np.roll(grown, -1, 1)
    return grown


def dataset(rng, n):
    labels = rng.integers(0, 2, n)
    scans, masks = zip(*(scan(rng, bool(l)) for l in labels))
    return torch.from_numpy(np.stack(scans))[:, None], torch.from_numpy(labels), np.stack(masks)


def model():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 2),
    )


def train(net, x, y):
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(12):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            batch = order[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            loss.backward()
            opt.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")


def accuracy(net, x, y):
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def pick_demo(net, x, y, masks):
    """The held-out lesion scan the model is surest about, after 8-bit quantisation."""
    quantised = torch.round(x * 255) / 255
    with torch.no_grad():
        p = net(quantised).softmax(1)[:, 1]
    p[y == 0] = -1
    k = int(p.argmax())
    return quantised[k:k + 1], masks[k], p[k].item()


def localisation(net, x, mask):
    from captum.attr import IntegratedGradients

    attr = IntegratedGradients(net).attribute(x, target=1, n_steps=50)[0, 0].abs().numpy()
    return attr[mask].sum() / attr.sum(), mask.mean()


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y, _ = dataset(rng, 3000)
    xt, yt, masks = dataset(rng, 600)
    net = model()
    train(net, x, y)
    net.eval()
    acc = accuracy(net, xt, yt)
    demo, mask, prob = pick_demo(net, xt, yt, masks)
    share, area = localisation(net, demo, mask)
    OUT.mkdir(parents=True, exist_ok=True)
    traced = torch.jit.trace(net, demo)
    assert traced(torch.zeros(8, 1, SIZE, SIZE)).shape == (8, 2)
    traced.save(str(OUT / "lesion_classifier.pt"))
    Image.fromarray((demo[0, 0].numpy() * 255).round().astype(np.uint8), mode="L").save(OUT / "scan_with_lesion.png")
    np.save(OUT / "scan_with_lesion_lesion.npy", mask.astype(np.float32))
    print(f"held-out accuracy {acc:.3f} on {len(yt)} scans")
    print(f"demo scan: P(lesion) = {prob:.4f}")
    print(f"Integrated Gradients: {share:.1%} of |attribution| on the lesion, which covers {area:.1%} of the scan")


if __name__ == "__main__":
    main()
