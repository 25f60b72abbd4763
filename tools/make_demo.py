"""Makes the demo assets in configs/demo/: a small CNN that tells whether a synthetic scan
slice holds a lesion, one held-out scan with a lesion to explain, and its lesion mask.

The scans are 64x64 single-channel slices in [0, 1]: a smooth elliptical organ of mid
intensity on a dark background, with a smooth bias field, faint texture and Gaussian noise.
Class 1 scans hold one small bright roundish lesion (radius 3-6 px) inside the organ; class 0
scans hold none. Half the scans of *both* classes also carry a similar bright blob outside the
organ, so a bright spot alone says nothing and the model must look inside the organ.

Rerun from the repository root (CPU, under a minute on 2 idle cores; deterministic: fixed
seeds, fixed thread count, deterministic algorithms, so reruns give byte-identical files
unless this script's source changes, which moves the TorchScript debug line numbers):

    ~/.cache/esegeta/venv/bin/python tools/make_demo.py

It writes
    configs/demo/lesion_classifier.pt          TorchScript, [B,1,64,64] -> [B,2] logits
    configs/demo/scan_with_lesion.png          8-bit grayscale, the model input is pixel/255
    configs/demo/scan_with_lesion_lesion.npy   float32 [64,64], 1 inside the lesion
    configs/demo/README.md                     what they are, with the numbers below
and prints the held-out accuracy, the model's P(lesion) on the reloaded PNG, and how much of
Captum's Integrated Gradients map falls on the lesion. It fails if any of these checks fails.
"""

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

SIZE = 64
N_TRAIN, N_TEST = 2400, 600
EPOCHS, BATCH, LR = 10, 64, 3e-3
SEED = 0
N_IG_CHECK = 100  # held-out lesion scans for the summary IG check
OUT = Path(__file__).resolve().parent.parent / "configs" / "demo"
MODEL, PNG, MASK = "lesion_classifier.pt", "scan_with_lesion.png", "scan_with_lesion_lesion.npy"

# ---------------------------------------------------------------- synthetic scans


def coords():
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return y, x


def smooth_field(rng, scale):
    """A smooth random field around 1: a sum of a few low-frequency waves."""
    y, x = coords()
    field = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(3):
        fy, fx = rng.uniform(-1, 1, 2) * 2 * np.pi / SIZE * 1.5
        field += np.cos(fy * y + fx * x + rng.uniform(0, 2 * np.pi))
    return 1 + scale * field / 3


def organ(rng):
    """A rotated soft-edged ellipse; returns the image and its elliptic radius map (<1 inside)."""
    y, x = coords()
    cy, cx = rng.uniform(29, 35, 2)
    ry, rx = rng.uniform(14, 19), rng.uniform(18, 24)
    angle = rng.uniform(0, np.pi)
    u = (y - cy) * np.cos(angle) + (x - cx) * np.sin(angle)
    v = -(y - cy) * np.sin(angle) + (x - cx) * np.cos(angle)
    radius = np.sqrt((u / ry) ** 2 + (v / rx) ** 2)
    body = rng.uniform(0.35, 0.5) / (1 + np.exp((radius - 1) * 15))
    return body * smooth_field(rng, 0.15), radius


def spot(rng, allowed):
    """A bright roundish blob (radius 3-6 px) centred on a random pixel of `allowed`."""
    y, x = coords()
    ys, xs = np.nonzero(allowed)
    k = rng.integers(len(ys))
    r = rng.uniform(3, 6)
    squash = rng.uniform(0.8, 1.25)
    d2 = ((y - ys[k]) * squash) ** 2 + ((x - xs[k]) / squash) ** 2
    image = rng.uniform(0.3, 0.45) * np.exp(-((np.sqrt(d2) / r) ** 4))
    return image, d2 <= r * r, r


def scan(rng, lesion):
    """One scan, its lesion mask and the lesion radius (0 without a lesion)."""
    image, radius = organ(rng)
    mask, r = np.zeros((SIZE, SIZE), bool), 0.0
    if lesion:
        blob, mask, r = spot(rng, radius < 0.6)
        image = image + blob
    if rng.random() < 0.5:
        blob, _, _ = spot(rng, (radius > 1.3) & border(7))
        image = image + blob
    image = image * smooth_field(rng, 0.2) + rng.normal(0, 0.03, image.shape)
    return np.clip(image, 0, 1).astype(np.float32), mask, r


def border(margin):
    """The pixels at least `margin` from the edge, so blobs stay whole."""
    keep = np.zeros((SIZE, SIZE), bool)
    keep[margin:-margin, margin:-margin] = True
    return keep


def dataset(rng, n):
    labels = np.arange(n) % 2
    rng.shuffle(labels)
    scans, masks, radii = zip(*(scan(rng, bool(label)) for label in labels))
    x = torch.from_numpy(np.stack(scans))[:, None]
    return x, torch.from_numpy(labels), np.stack(masks), np.array(radii)


# ---------------------------------------------------------------- model


def make_model():
    """Three conv-ReLU layers; a global *max* pool (a lesion is one small spot, which a
    global average dilutes: with it, training was slower and unstable here)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 2),
    )


def train(net, x, y):
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, total_steps=EPOCHS * -(-len(x) // BATCH))
    net.train()
    for epoch in range(EPOCHS):
        order, total = torch.randperm(len(x)), 0.0
        for i in range(0, len(x), BATCH):
            batch = order[i:i + BATCH]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
        print(f"  epoch {epoch}: loss {total / len(x):.4f}")
    net.eval()


def probabilities(net, x):
    with torch.no_grad():
        return net(x).softmax(1)[:, 1]


def export(net):
    """Traces on a [1,1,64,64] example; checks batch 1 and 8 against eager; saves; reloads."""
    example = torch.rand(8, 1, SIZE, SIZE)
    traced = torch.jit.trace(net, example[:1])
    for b in (1, 8):
        with torch.no_grad():
            torch.testing.assert_close(traced(example[:b]), net(example[:b]))
    path = OUT / MODEL
    traced.save(str(path))
    assert path.stat().st_size < 500_000, f"{path} is {path.stat().st_size} bytes"
    return torch.jit.load(str(path))


# ---------------------------------------------------------------- demo scan


def quantise(x):
    return torch.round(x * 255) / 255


def pick_demo(net, x, y, radii):
    """The first held-out lesion scan with a clearly visible lesion (radius >= 5 px) that the
    model calls a lesion with P >= 0.99 after 8-bit quantisation."""
    p = probabilities(net, quantise(x))
    ok = (y == 1).numpy() & (radii >= 5) & (p >= 0.99).numpy()
    assert ok.any(), "no held-out scan fits the demo"
    return int(np.flatnonzero(ok)[0])


def save_demo(image, mask):
    pixels = (image.numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(OUT / PNG)
    np.save(OUT / MASK, mask.astype(np.float32))


def load_png():
    pixels = np.asarray(Image.open(OUT / PNG), dtype=np.float32) / 255
    assert pixels.shape == (SIZE, SIZE)
    return torch.from_numpy(pixels)[None, None]


def lesion_share(net, x, masks):
    """Per scan: the fraction of total |IG attribution| inside the lesion mask."""
    from captum.attr import IntegratedGradients

    attr = IntegratedGradients(net).attribute(x, baselines=0.0, target=1, n_steps=50)
    attr = attr[:, 0].abs().detach().numpy()
    return (attr * masks).sum((1, 2)) / attr.sum((1, 2))


# ---------------------------------------------------------------- main


def write_readme(stats):
    text = f"""# Demo assets

Made by `tools/make_demo.py` (rerun from the repository root with
`~/.cache/esegeta/venv/bin/python tools/make_demo.py`; CPU, deterministic, under a minute on
2 idle cores; it rewrites every file here, this one included).

- `{MODEL}`: TorchScript CNN (three 3x3 conv-ReLU layers, two max-pools, a global
  max pool, a linear layer), `[B,1,64,64]` in [0, 1] -> `[B,2]` logits; class 1 = lesion.
  Traced on a batch of 1, checked at batch 1 and 8. {stats['size_kb']:.0f} KB.
- `{PNG}`: a held-out scan with a lesion, 8-bit grayscale; the model input is
  pixel / 255 (no normalisation). P(lesion) = {stats['prob']:.6f} on the reloaded PNG.
- `{MASK}`: its lesion mask, float32 64x64, 1 inside the lesion
  ({stats['area']:.1%} of the pixels), for localisation metrics.

The data are synthetic: a smooth elliptical organ on a dark background with a bias field and
noise; class 1 adds one small bright roundish lesion (radius 3-6 px) inside the organ. Half
the scans of both classes also carry a similar bright blob outside the organ, so the model
has to look inside it. Trained on {N_TRAIN} scans; held-out accuracy {stats['acc']:.1%}
on {N_TEST} scans.

Sanity check (Captum 0.9 Integrated Gradients, 50 steps, zero baseline, target 1, on the
reloaded PNG): {stats['share']:.0%} of the total |attribution| lies on the lesion, which covers
{stats['area']:.1%} of the scan. On the first {stats['n_lesion']} held-out lesion scans \
the share is {stats['min_share']:.0%} to {stats['max_share']:.0%} \
(median {stats['median_share']:.0%}), for lesions covering {stats['mean_area']:.1%} of a scan
on average.
"""
    (OUT / "README.md").write_text(text)


def fit(rng):
    """Trains on fresh scans; returns the model and the held-out set with its accuracy."""
    x, y, _, _ = dataset(rng, N_TRAIN)
    held_out = dataset(rng, N_TEST)
    net = make_model()
    start = time.time()
    print(f"training on {N_TRAIN} scans")
    train(net, x, y)
    print(f"  trained in {time.time() - start:.1f} s")
    xt, yt = held_out[:2]
    acc = ((probabilities(net, xt) > 0.5).long() == yt).float().mean().item()
    assert acc > 0.95, f"held-out accuracy {acc:.3f}"
    return net, held_out, acc


def demo_checks(traced, mask):
    """P(lesion) and the IG lesion share on the PNG as reloaded from disk."""
    demo = load_png()
    with torch.no_grad():
        p0, prob = traced(demo).softmax(1)[0].tolist()
    assert prob >= 0.99, f"P(lesion) on the reloaded PNG is {prob}"
    share = lesion_share(traced, demo, mask[None])[0]
    assert share > 10 * mask.mean(), "IG does not pick out the lesion"
    return dict(prob=prob, p0=p0, share=share, area=mask.mean())


def held_out_ig(traced, xt, yt, masks):
    lesions = np.flatnonzero((yt == 1).numpy())[:N_IG_CHECK]
    shares = lesion_share(traced, quantise(xt[lesions]), masks[lesions])
    return dict(n_lesion=len(lesions), median_share=np.median(shares), min_share=shares.min(),
                max_share=shares.max(), mean_area=masks[lesions].mean())


def report(stats, k, radius):
    print(f"held-out accuracy {stats['acc']:.4f} on {N_TEST} scans")
    print(f"demo scan = held-out scan {k}, lesion radius {radius:.1f} px: "
          f"P(lesion) = {stats['prob']:.6f} (P(no lesion) = {stats['p0']:.1e}) on the reloaded PNG")
    print(f"IG on it: {stats['share']:.1%} of |attribution| on the lesion, "
          f"which covers {stats['area']:.2%} of the pixels")
    print(f"IG on {stats['n_lesion']} held-out lesion scans: "
          f"share median {stats['median_share']:.1%}, "
          f"min {stats['min_share']:.1%}, max {stats['max_share']:.1%}; "
          f"lesions cover {stats['mean_area']:.2%} of a scan on average")
    for name in (MODEL, PNG, MASK, "README.md"):
        print(f"  {name}: {(OUT / name).stat().st_size} bytes")


def main():
    start = time.time()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)

    net, (xt, yt, masks, radii), acc = fit(np.random.default_rng(SEED))
    traced = export(net)
    k = pick_demo(net, xt, yt, radii)
    save_demo(xt[k, 0], masks[k])
    stats = dict(acc=acc, size_kb=(OUT / MODEL).stat().st_size / 1024,
                 **demo_checks(traced, masks[k]), **held_out_ig(traced, xt, yt, masks))
    write_readme(stats)
    report(stats, k, radii[k])
    print(f"done in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
