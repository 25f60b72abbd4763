"""esegeta's superpixels and supervoxels against scikit-image 0.26, in one run, same threads.

Runs, for each case, scikit-image's ``segmentation.slic`` / ``felzenszwalb`` / ``quickshift``
in this process and ``esegeta segment`` (the release binary, ``OMP_NUM_THREADS=T``, timed as
the whole command: process start, reading the ``.npy``, writing the labels) one after the
other, each repetition in turn so both see the same load, and prints a markdown table of
median times with the share of pixels whose labels are equal (no renumbering).

    ~/.cache/esegeta/venv/bin/pip install scikit-image==0.26.0 torch==2.13.0
    ~/.cache/esegeta/venv/bin/python bench/segment.py [--size 256] [--reps 3] [--threads 1]

scikit-image's SLIC is single-threaded, so ``--threads 1`` is the like-for-like comparison.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage import data, filters, segmentation

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "esegeta"


def cases(size):
    rng = np.random.default_rng(0)
    volume = filters.gaussian(rng.random((size,) * 3), 3).astype(np.float32)
    photo = (data.astronaut() / 255.0).astype(np.float32)  # 512x512 RGB
    lime = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}
    return [
        (f"slic {size}^3, 2000 supervoxels", volume[None, None], volume.astype(np.float64),
         "slic", {"n_segments": 2000, "compactness": 0.1}, {"channel_axis": None}),
        ("slic 512x512 RGB", photo.transpose(2, 0, 1)[None], photo.astype(np.float64),
         "slic", {}, {}),
        ("felzenszwalb 512x512 RGB", photo.transpose(2, 0, 1)[None], photo.astype(np.float64),
         "felzenszwalb", {"scale": 100, "sigma": 0.5, "min_size": 50}, {}),
        ("quickshift 512x512 RGB (lime's)", photo.transpose(2, 0, 1)[None],
         photo.astype(np.float64), "quickshift", lime, {}),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, layout, image, algorithm, params, extra in cases(args.size):
            source, out = Path(tmp) / "input.npy", Path(tmp) / "labels.npy"
            np.save(source, layout)
            ours, theirs, equal = [], [], 0.0
            for _ in range(args.reps):
                start = time.perf_counter()
                reference = getattr(segmentation, algorithm)(image, **params, **extra)
                theirs.append(time.perf_counter() - start)
                start = time.perf_counter()
                subprocess.run(
                    [BINARY, "segment", "--input", source, "--algorithm", algorithm,
                     "--params", json.dumps(params), "--out", out],
                    check=True, capture_output=True, env=env,
                )
                ours.append(time.perf_counter() - start)
                equal = float((np.load(out)[0] == reference).mean())
            rows.append((name, statistics.median(theirs), statistics.median(ours), equal))
    print(f"threads {args.threads}, {args.reps} repetition(s), load average "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| case | scikit-image 0.26 | esegeta segment | labels equal |")
    print("|---|---|---|---|")
    for name, theirs, ours, equal in rows:
        print(f"| {name} | {theirs:.2f} s | {ours:.2f} s | {equal:.4f} |")


if __name__ == "__main__":
    main()
