"""Synthetic TOF-MRA-like volumes with ground-truth vessel masks, for the vessel study.

Each volume is a head-shaped ellipsoid of soft tissue on a dark background, with a tree of
bright tubular vessels (branching, radius shrinking along the branches), a smooth bias field
and Rician-like noise, as time-of-flight angiograms look: bright inflowing blood on darker
stationary tissue. Voxels are anisotropic (0.5 x 0.5 x 0.8 mm) with a rotated affine, so that
tools that ignore the affine show it.

    ~/.cache/esegeta/venv/bin/python tools/make_vessels.py [--count N] [--size 64] [--out DIR] [--seed S]

writes DIR/vessels_XX.nii.gz (int16, like scanners write) and DIR/vessels_XX_mask.nii.gz
(uint8). The defaults make the three demo volumes in configs/vessels/; training scripts call
`volume(rng, size)` for as many more as they need.
"""

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

SPACING = (0.5, 0.5, 0.8)


def affine(size):
    """Anisotropic voxels, rotated 10 degrees about the k axis, centred on the origin."""
    angle = np.deg2rad(10)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rotation @ np.diag(SPACING)
    a[:3, 3] = -a[:3, :3] @ (np.array([size] * 3) / 2)
    return a


def head(size, rng):
    """Soft-tissue ellipsoid with a brighter rim (skin and fat) and its mask."""
    g = np.indices((size,) * 3, dtype=np.float32) / (size - 1) * 2 - 1
    radii = rng.uniform(0.78, 0.9, 3)
    r = np.sqrt(sum((g[i] / radii[i]) ** 2 for i in range(3)))
    tissue = 0.25 / (1 + np.exp((r - 1) * 30)) + 0.1 * np.exp(-((r - 0.96) ** 2) / 0.002)
    return tissue, r < 0.92


def branch(points, radii, start, direction, radius, length, rng, inside, depth):
    """Grows one vessel by small steps, bending randomly, and spawns thinner branches."""
    position = np.array(start, dtype=np.float64)
    for step in range(length):
        direction = direction + rng.normal(0, 0.25, 3)
        direction /= np.linalg.norm(direction)
        position = position + direction * 1.0
        if not inside(position):
            return
        points.append(position.copy())
        radii.append(radius)
        radius = max(radius * 0.995, 0.7)
        if depth < 3 and rng.random() < 0.03:
            turn = rng.normal(0, 1, 3)
            child = direction + 0.9 * (turn - turn @ direction * direction)
            branch(points, radii, position, child / np.linalg.norm(child), radius * 0.7, length - step, rng, inside, depth + 1)


def vessel_tree(size, mask, rng, trunks=3):
    """Centre points and radii of a few vessel trees entering from the head's lower side."""
    def inside(p):
        i = np.round(p).astype(int)
        return bool(np.all(i >= 0) and np.all(i < size) and mask[tuple(i)])

    points, radii = [], []
    for _ in range(trunks):
        start = np.array([rng.uniform(0.35, 0.65) * size, rng.uniform(0.35, 0.65) * size, 0.15 * size])
        while not inside(start):
            start[2] += 1
        direction = np.array([rng.normal(0, 0.3), rng.normal(0, 0.3), 1.0])
        branch(points, radii, start, direction / np.linalg.norm(direction), rng.uniform(1.6, 2.4), size * 2, rng, inside, 0)
    return np.array(points), np.array(radii)


def render(size, points, radii):
    """Vessel intensity (smooth tube profile) and the ground-truth mask (inside the radius)."""
    grid = np.indices((size,) * 3, dtype=np.float32).reshape(3, -1).T
    signal = np.zeros(len(grid), np.float32)
    truth = np.zeros(len(grid), bool)
    for p, r in zip(points, radii):
        lo, hi = np.maximum(np.floor(p - r - 2), 0).astype(int), np.minimum(np.ceil(p + r + 2), size - 1).astype(int)
        box = np.indices(hi - lo + 1).reshape(3, -1).T + lo
        index = np.ravel_multi_index(box.T, (size,) * 3)
        d = np.linalg.norm(box - p, axis=1)
        signal[index] = np.maximum(signal[index], 1 / (1 + np.exp((d - r) * 3)))
        truth[index] |= d <= r
    return signal.reshape((size,) * 3), truth.reshape((size,) * 3)


def bias_field(size, rng):
    g = np.indices((size,) * 3, dtype=np.float32) / size
    field = sum(rng.uniform(-0.15, 0.15) * np.sin(g[i] * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, 3)) for i in range(3))
    return 1 + field


def volume(rng, size=64):
    """One synthetic angiogram in [0, 1] (float32) and its vessel mask (bool)."""
    tissue, mask = head(size, rng)
    points, radii = vessel_tree(size, mask, rng)
    vessels, truth = render(size, points, radii)
    image = (tissue + 0.75 * vessels) * bias_field(size, rng)
    noisy = np.sqrt((image + rng.normal(0, 0.03, image.shape)) ** 2 + rng.normal(0, 0.03, image.shape) ** 2)
    return np.clip(noisy, 0, 1).astype(np.float32), truth


def save(image, truth, stem, size):
    a = affine(size)
    scan = nib.Nifti1Image(np.round(image * 1000).astype(np.int16), a)
    scan.header.set_xyzt_units("mm")
    nib.save(scan, f"{stem}.nii.gz")
    nib.save(nib.Nifti1Image(truth.astype(np.uint8), a), f"{stem}_mask.nii.gz")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "configs" / "vessels")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for k in range(args.count):
        image, truth = volume(rng, args.size)
        save(image, truth, args.out / f"vessels_{k:02d}", args.size)
        print(f"vessels_{k:02d}: {truth.mean():.2%} vessel voxels, vessel/tissue contrast {image[truth].mean() / image[~truth & (image > 0.1)].mean():.2f}")


if __name__ == "__main__":
    main()
