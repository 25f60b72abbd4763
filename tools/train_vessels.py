"""Trains three small 3D vessel segmenters after the DS6 paper (Chatterjee et al., "DS6,
Deformation-aware semi-supervised learning: application to small vessel segmentation with noisy
training data") on the synthetic angiograms of tools/make_vessels.py, and exports them for
esegeta to configs/vessels/models/.

    unet             UNet: max-pool down, trilinear up, batch norm, ReLU, 3 levels
    unet_mss         UNet with multi-scale (deep) supervision: strided-conv down, transposed-conv
                     up, instance norm, LeakyReLU, side outputs at 1/2 and 1/4 resolution
    unet_mss_deform  the same network, trained with random elastic deformations

Rerun from the repository root (CPU, 2 threads: about 1.5 min a model on idle cores, 5-10 min
in all on a loaded machine; deterministic: fixed seeds, fixed thread count, deterministic
algorithms, so a rerun on the same machine gives the same weights):

    ~/.cache/esegeta/venv/bin/python tools/train_vessels.py [--models unet ...] [--steps N]

Training data are made on the fly with make_vessels.volume(): 48 training volumes (seed 1) and
6 held-out ones (seed 2), 64^3, min-max normalised to [0, 1]. The networks see random 32^3
crops (most of them centred on a vessel voxel) and are scored on the full held-out 64^3
volumes, and on the three demo volumes of configs/vessels/ read back from their NIfTI files.
Loss: soft Dice + BCE (vessels are about 1% of the voxels); Adam with a cosine learning rate.

It writes, per model, <name>.pt (TorchScript, traced on [1,1,64,64,64] in eval mode) and, when
the ONNX exporter works here, <name>.onnx (plus <name>.onnx.data if the exporter writes the
weights beside it). The exported models end with a sigmoid: they output probability maps in
[0, 1]. With all three models trained it also writes configs/vessels/models/README.md with the
measured numbers. It fails if a check fails (traced == eager within 1e-5 for batch 1 and 2,
64^3 and 48^3 inputs; file size < 2 MB).
"""

import argparse
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_vessels  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "configs" / "vessels" / "models"
DEMO = ROOT / "configs" / "vessels"
SIZE, CROP = 64, 32
N_TRAIN, N_TEST = 48, 6
TRAIN_SEED, TEST_SEED, TORCH_SEED = 1, 2, 0
STEPS, BATCH, LR = 400, 4, 3e-3
VESSEL_CENTRED = 0.7  # share of crops centred on a vessel voxel
DS_WEIGHTS = (1.0, 0.5, 0.25)  # deep-supervision weights, full resolution first
MAX_BYTES = 2 * 1024 * 1024
MODELS = ("unet", "unet_mss", "unet_mss_deform")
# Channels-last 3D tensors make oneDNN's Conv3d backward ~20x faster on CPU than the default layout.
CHANNELS_LAST = torch.channels_last_3d

# ---------------------------------------------------------------- data


def minmax(x):
    return (x - x.min()) / max(float(x.max() - x.min()), 1e-12)


def dataset(seed, n):
    """n synthetic volumes as float32 tensors [n, 1, S, S, S] (image, mask)."""
    rng = np.random.default_rng(seed)
    pairs = [make_vessels.volume(rng, SIZE) for _ in range(n)]
    images = np.stack([minmax(image) for image, _ in pairs])[:, None]
    masks = np.stack([mask for _, mask in pairs])[:, None].astype(np.float32)
    return torch.from_numpy(images), torch.from_numpy(masks)


def demo_volumes():
    """The three demo volumes as stored (int16), min-max normalised as esegeta's `minmax` does."""
    images, masks = [], []
    for path in sorted(DEMO.glob("vessels_??.nii.gz")):
        images.append(minmax(np.asarray(nib.load(path).get_fdata(), np.float32)))
        masks.append(np.asarray(nib.load(str(path).replace(".nii.gz", "_mask.nii.gz")).dataobj) > 0)
    return torch.from_numpy(np.stack(images)[:, None]), torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))


def crop_corner(mask, gen):
    """Corner of a CROP^3 crop, centred on a random vessel voxel with probability VESSEL_CENTRED."""
    if torch.rand(1, generator=gen).item() < VESSEL_CENTRED:
        vessel = mask[0].nonzero()
        centre = vessel[torch.randint(len(vessel), (1,), generator=gen).item()]
        return [int(min(max(c - CROP // 2, 0), SIZE - CROP)) for c in centre]
    return torch.randint(SIZE - CROP + 1, (3,), generator=gen).tolist()


def batch(images, masks, gen):
    """BATCH random crops [B, 1, CROP, CROP, CROP] of random training volumes."""
    xs, ys = [], []
    for _ in range(BATCH):
        k = torch.randint(len(images), (1,), generator=gen).item()
        i, j, l = crop_corner(masks[k], gen)
        window = (slice(None), slice(i, i + CROP), slice(j, j + CROP), slice(l, l + CROP))
        xs.append(images[k][window])
        ys.append(masks[k][window])
    return torch.stack(xs), torch.stack(ys)


def elastic(x, y, gen, control=4, sigma=2.0):
    """Random smooth deformation of images x and masks y [B, 1, D, H, W]: a coarse
    control^3 grid of Gaussian displacements (sigma voxels), upsampled trilinearly to a dense
    field; images resampled trilinearly, masks with nearest neighbours."""
    b, _, d, h, w = x.shape
    coarse = torch.randn(b, 3, control, control, control, generator=gen) * sigma
    flow = F.interpolate(coarse, size=(d, h, w), mode="trilinear", align_corners=True)
    voxel = torch.tensor([2 / (w - 1), 2 / (h - 1), 2 / (d - 1)])  # grid_sample's (x, y, z) = (W, H, D)
    identity = F.affine_grid(torch.eye(3, 4).expand(b, 3, 4), list(x.shape), align_corners=True)
    grid = identity + flow.permute(0, 2, 3, 4, 1) * voxel
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    y = F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=True)
    return x, y


# ---------------------------------------------------------------- networks


def double_conv(cin, cout, norm, act):
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1), norm(cout), act(),
        nn.Conv3d(cout, cout, 3, padding=1), norm(cout), act(),
    )


def bn(c):
    return nn.BatchNorm3d(c)


def inorm(c):
    return nn.InstanceNorm3d(c, affine=True)


def lrelu():
    return nn.LeakyReLU(0.01)


class UNet(nn.Module):
    """3-level UNet: max-pool down, trilinear up, batch norm, ReLU; returns logits [B,1,...]."""

    def __init__(self, c=12):
        super().__init__()
        self.enc1 = double_conv(1, c, bn, nn.ReLU)
        self.enc2 = double_conv(c, 2 * c, bn, nn.ReLU)
        self.bottom = double_conv(2 * c, 4 * c, bn, nn.ReLU)
        self.dec2 = double_conv(6 * c, 2 * c, bn, nn.ReLU)
        self.dec1 = double_conv(3 * c, c, bn, nn.ReLU)
        self.head = nn.Conv3d(c, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool3d(e1, 2))
        b = self.bottom(F.max_pool3d(e2, 2))
        d2 = self.dec2(torch.cat([up(b), e2], 1))
        d1 = self.dec1(torch.cat([up(d2), e1], 1))
        return self.head(d1)


def up(x):
    return F.interpolate(x, scale_factor=2.0, mode="trilinear", align_corners=False)


def down(cin, cout):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=2, padding=1), inorm(cout), lrelu())


class UNetMSS(nn.Module):
    """3-level UNet with multi-scale supervision: strided-conv down, transposed-conv up,
    instance norm, LeakyReLU. Returns logits (full, 1/2, 1/4 resolution)."""

    def __init__(self, c=12):
        super().__init__()
        self.enc1 = double_conv(1, c, inorm, lrelu)
        self.down1 = down(c, 2 * c)
        self.enc2 = double_conv(2 * c, 2 * c, inorm, lrelu)
        self.down2 = down(2 * c, 4 * c)
        self.bottom = double_conv(4 * c, 4 * c, inorm, lrelu)
        self.up2 = nn.ConvTranspose3d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = double_conv(4 * c, 2 * c, inorm, lrelu)
        self.up1 = nn.ConvTranspose3d(2 * c, c, 2, stride=2)
        self.dec1 = double_conv(2 * c, c, inorm, lrelu)
        self.heads = nn.ModuleList([nn.Conv3d(k * c, 1, 1) for k in (1, 2, 4)])

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.down1(e1))
        b = self.bottom(self.down2(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return tuple(head(f) for head, f in zip(self.heads, (d1, d2, b)))


class Probabilities(nn.Module):
    """What is exported: the network followed by a sigmoid on each of its outputs."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        if isinstance(out, tuple):
            return tuple(torch.sigmoid(o) for o in out)
        return torch.sigmoid(out)


def make_net(name):
    return UNet() if name == "unet" else UNetMSS()


def parameters(net):
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------- training


def dice_bce(logits, target):
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return 1 - dice + F.binary_cross_entropy_with_logits(logits, target)


def loss_of(outputs, target):
    """Dice + BCE; for deep supervision the weighted mean over the scales, against masks
    average-pooled to each scale (soft vessel fractions)."""
    if not isinstance(outputs, tuple):
        return dice_bce(outputs, target)
    total = sum(w * dice_bce(o, F.avg_pool3d(target, 2 ** s) if s else target)
                for s, (w, o) in enumerate(zip(DS_WEIGHTS, outputs)))
    return total / sum(DS_WEIGHTS)


def train(name, images, masks, steps):
    torch.manual_seed(TORCH_SEED)
    gen = torch.Generator().manual_seed(TORCH_SEED)
    net = make_net(name).to(memory_format=CHANNELS_LAST)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * s / steps)))
    net.train()
    start, running = time.time(), 0.0
    for step in range(1, steps + 1):
        x, y = batch(images, masks, gen)
        if name.endswith("_deform"):
            x, y = elastic(x, y, gen)
        x, y = x.to(memory_format=CHANNELS_LAST), y.to(memory_format=CHANNELS_LAST)
        loss = loss_of(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if step % 100 == 0 or step == steps:
            print(f"  {name} step {step:4d}/{steps}: loss {running / ((step - 1) % 100 + 1):.4f}, "
                  f"{time.time() - start:.0f} s", flush=True)
            running = 0.0
    return net.to(memory_format=torch.contiguous_format).eval(), time.time() - start


def full_res(out):
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def dice_scores(model, images, masks):
    """Dice of (probability > 0.5) per full volume; model outputs probabilities."""
    scores = []
    for x, y in zip(images, masks):
        pred = (full_res(model(x[None])) > 0.5).float()
        scores.append(float(2 * (pred * y).sum() / (pred.sum() + y.sum()).clamp_min(1)))
    return scores


# ---------------------------------------------------------------- export


def max_difference(a, b):
    a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
    assert len(a) == len(b) and all(p.shape == q.shape for p, q in zip(a, b))
    return max(float((p - q).abs().max()) for p, q in zip(a, b))


@torch.no_grad()
def export_torchscript(model, name):
    example = torch.rand(1, 1, SIZE, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    traced = torch.jit.trace(model, example)
    path = OUT / f"{name}.pt"
    traced.save(str(path))
    loaded = torch.jit.load(str(path))
    gen = torch.Generator().manual_seed(2)
    for shape in ((1, 1, 64, 64, 64), (2, 1, 64, 64, 64), (1, 1, 48, 48, 48), (2, 1, 48, 48, 48)):
        x = torch.rand(shape, generator=gen)
        eager, out = model(x), loaded(x)
        assert full_res(out).shape == shape, f"{name}: output {full_res(out).shape} for input {shape}"
        diff = max_difference(eager, out)
        assert diff <= 1e-5, f"{name}: traced differs from eager by {diff} on {shape}"
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{name}.pt is {size} bytes"
    return size


def export_onnx(model, name):
    """ONNX via the dynamo exporter with a dynamic batch; returns the files' sizes or, if the
    exporter fails here, the reason (and removes what it may have left)."""
    paths = (OUT / f"{name}.onnx", OUT / f"{name}.onnx.data")
    for p in paths:
        p.unlink(missing_ok=True)
    example = torch.rand(2, 1, SIZE, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    try:
        batch_dim = torch.export.Dim("batch", min=1, max=1024)
        with torch.no_grad():
            torch.onnx.export(model, (example,), str(paths[0]), dynamo=True,
                              dynamic_shapes=({0: batch_dim},), input_names=["image"])
    except Exception as e:  # noqa: BLE001 - any exporter failure means: no ONNX file
        for p in paths:
            p.unlink(missing_ok=True)
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return {p.name: p.stat().st_size for p in paths if p.exists()}


# ---------------------------------------------------------------- README


def write_readme(results, total_time, onnx_note):
    rows = "\n".join(
        f"| `{r['name']}` | {r['params']:,} | {r['train_s'] / 60:.1f} min | {np.mean(r['dice']):.3f} "
        f"({min(r['dice']):.3f}-{max(r['dice']):.3f}) | {np.mean(r['demo_dice']):.3f} | {r['pt_bytes'] / 1024:.0f} KB |"
        for r in results)
    text = README.format(rows=rows, total=total_time / 60, onnx=onnx_note, steps=results[0]["steps"],
                         crop=CROP, batch=BATCH, lr=LR, n_train=N_TRAIN, n_test=N_TEST,
                         weights=", ".join(f"{w:g}" for w in DS_WEIGHTS))
    (OUT / "README.md").write_text(text)


README = """# Vessel segmenters (DS6 architectures, small)

Made by `tools/train_vessels.py` (CPU, 2 threads, {total:.1f} min wall-clock for all three,
data and export included; the times below depend on the machine's load; deterministic).
Three small 3D networks after the DS6 paper (Chatterjee et al., "DS6, Deformation-aware
semi-supervised learning: application to small vessel segmentation with noisy training data"),
trained on the synthetic angiograms of `tools/make_vessels.py`. They are toys for explaining
vessel segmentation with esegeta, not models of real angiograms.

| model | parameters | training | held-out Dice, mean (min-max) | demo volumes Dice | `.pt` |
|---|---|---|---|---|---|
{rows}

Dice: `probability > 0.5` against the ground-truth mask, per full 64^3 volume, averaged over
{n_test} held-out synthetic volumes (seed 2, never seen in training) and over the three demo
volumes `configs/vessels/vessels_0?.nii.gz` read back from their int16 NIfTI files.

## Architectures

All three have 3 levels (64^3 -> 32^3 -> 16^3 for a 64^3 input) with 12, 24 and 48 channels
and two 3x3x3 convolutions per level. They are fully convolutional: any input whose spatial
sizes are multiples of 4 works (checked: 64^3 and 48^3, batch 1 and 2).

- `unet`: UNet; max-pool down, trilinear interpolation up (scale 2), batch norm, ReLU,
  skip connections by concatenation, a 1x1x1 convolution to one channel.
- `unet_mss`: UNet with multi-scale supervision; stride-2 3x3x3 convolutions down,
  2x2x2 transposed convolutions up, instance norm (affine), LeakyReLU(0.01); 1x1x1 heads on
  the full-resolution decoder, the 1/2-resolution decoder and the 1/4-resolution bottleneck.
- `unet_mss_deform`: the same network as `unet_mss`, trained with elastic deformations: a
  random 4x4x4 grid of displacements (Gaussian, sigma 2 voxels) upsampled trilinearly to a
  dense field, applied to the crop with `grid_sample` (trilinear for the image, nearest for
  the mask), on every training batch.

Instance norm normalises each example over its whole spatial extent, so the `unet_mss*`
outputs at a voxel depend (weakly) on the whole input, and on how it is cropped or patched.

## Output conventions

The exported models end with a sigmoid: they output **probabilities in [0, 1]**, not logits
(float32 sigmoid; far from the vessel boundary it rounds to exactly 0 or 1).

- `unet.pt`: `[B,1,D,H,W] -> [B,1,D,H,W]`, the vessel probability.
- `unet_mss.pt`, `unet_mss_deform.pt`: `[B,1,D,H,W] ->` a tuple of three probability maps,
  **full resolution first**: `[B,1,D,H,W]`, `[B,1,D/2,H/2,W/2]`, `[B,1,D/4,H/4,W/4]`
  (the deep-supervision side outputs). The first is the segmentation; esegeta explains it
  by default (`"model": {{"output_index": 0}}`).

One foreground channel: use esegeta's `threshold` segmentation wrapper (Otsu on the
min-max-normalised probability map). Input: one channel, intensities min-max normalised to
[0, 1] as in training (`"preprocessing": {{"normalize": "minmax"}}`; for the demo volumes this
is about the stored int16 value / 1000).

ONNX: {onnx}

## Training

{n_train} synthetic 64^3 volumes (`make_vessels.volume`, seed 1), each min-max normalised;
{steps} Adam steps (lr {lr:g}, cosine decay to 0) of {batch} random {crop}^3 crops, 70% of them
centred on a vessel voxel. Loss: soft Dice + binary cross-entropy on the logits. The `unet_mss*`
loss is the weighted mean ({weights}, full resolution first) of that loss at each scale,
against the mask average-pooled to the scale (the vessel fraction of each coarse voxel).

## Regenerate

    ~/.cache/esegeta/venv/bin/python tools/train_vessels.py

rewrites the `.pt` files (and `.onnx` where the exporter is installed) and this README.
`--models NAME ...` retrains some of them only (the README is then left alone), `--steps N`
changes the number of steps.
"""


# ---------------------------------------------------------------- main


def run_model(name, data, steps):
    print(f"{name}: training", flush=True)
    net, seconds = train(name, *data["train"], steps)
    model = Probabilities(net).eval()
    result = dict(name=name, params=parameters(net), train_s=seconds, steps=steps,
                  dice=dice_scores(model, *data["test"]), demo_dice=dice_scores(model, *data["demo"]))
    result["pt_bytes"] = export_torchscript(model, name)
    result["onnx"] = export_onnx(model, name)
    print(f"{name}: {result['params']:,} parameters, {seconds:.0f} s, held-out Dice "
          f"{np.mean(result['dice']):.3f} {np.round(result['dice'], 3).tolist()}, demo Dice "
          f"{np.mean(result['demo_dice']):.3f}, {name}.pt {result['pt_bytes']:,} B, ONNX {result['onnx']}", flush=True)
    return result


def onnx_note(results):
    notes = [r["onnx"] for r in results]
    if all(isinstance(n, dict) for n in notes):
        files = ", ".join(f"`{f}` ({s / 1024:.0f} KB)" for n in notes for f, s in n.items())
        return f"exported with `torch.onnx.export(..., dynamo=True)`, dynamic batch: {files}."
    reasons = sorted({n for n in notes if isinstance(n, str)})
    return ("not exported: the exporter failed when these files were made (" + "; ".join(reasons) + "). "
            "Rerun the script where `onnxscript` is installed to add `<name>.onnx`.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True, warn_only=True)
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.time()
    data = dict(train=dataset(TRAIN_SEED, N_TRAIN), test=dataset(TEST_SEED, N_TEST), demo=demo_volumes())
    print(f"data: {N_TRAIN} training, {N_TEST} held-out volumes, {data['train'][1].mean():.2%} vessel voxels, "
          f"{time.time() - start:.0f} s", flush=True)
    results = [run_model(name, data, args.steps) for name in args.models]
    total = time.time() - start
    if args.models == list(MODELS):
        write_readme(results, total, onnx_note(results))
    print(f"total {total / 60:.1f} min")


if __name__ == "__main__":
    main()
