"""esegeta's TorchRay plugin against TorchRay 1.0.0.2 itself, side by side in one run.

For RISE (4000 masks, 7 cells, p 0.5) and extremal perturbation (area 0.1, 300 iterations) on
the bench's ResNet-18 (bench/models/resnet18.pt, 1x3x224x224): esegeta's method time
(`esegeta explain --timing`, the plugin call alone) and TorchRay's (the call alone, in a child
process with the same model file and thread count), alternating, `--reps` times; the table
gives medians and esegeta's time as a fraction of TorchRay's. TorchRay is only run, never
read (its licence forbids reusing its code): `pip install torchray==1.0.0.2`.

Usage: python bench/torchray.py [--reps N] [--threads N] [--quick] [--only NAME]
  --quick: 400 masks and 30 iterations, to see the ratio in a minute.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ESEGETA = HERE.parent / "target" / "release" / "esegeta"
MODEL = HERE / "models" / "resnet18.pt"
IMAGE = HERE / "models" / "image.npy"
TARGET = 3

TORCHRAY_CALL = r"""
import json, sys, time
import numpy as np, torch
from torchray.attribution.rise import rise
from torchray.attribution.extremal_perturbation import extremal_perturbation
method, params, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = torch.jit.load(sys.argv[4]).eval()
x = torch.from_numpy(np.load(sys.argv[5]))
for p in model.parameters():
    p.requires_grad_(False)
start = time.perf_counter()
if method == "rise":
    with torch.no_grad():
        rise(model, x, target=int(sys.argv[6]), **params)
else:
    extremal_perturbation(model, x, int(sys.argv[6]), **params)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def cases(quick):
    masks, iters = (400, 30) if quick else (4000, 300)
    return [
        ("rise", "torchray.rise", {"num_masks": masks, "num_cells": 7, "p": 0.5},
         {"num_masks": masks, "num_cells": 7, "p": 0.5}),
        ("extremal_perturbation", "torchray.extremal_perturbation",
         {"areas": [0.1], "max_iter": iters}, {"areas": [0.1], "max_iter": iters}),
    ]


def esegeta_seconds(method, params, threads, out):
    cmd = [str(ESEGETA), "explain", "--model", str(MODEL), "--input", str(IMAGE),
           "--method", method, "--params", json.dumps(params), "--target", str(TARGET),
           "--threads", str(threads), "--timing", "--out", out]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(l for l in done.stdout.splitlines() if l.startswith("timing: "))
    return json.loads(line[len("timing: "):])["method_s"]


def torchray_seconds(method, params, threads):
    cmd = [sys.executable, "-c", TORCHRAY_CALL, method, json.dumps(params), str(threads),
           str(MODEL), str(IMAGE), str(TARGET)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="only the methods whose name contains this")
    args = parser.parse_args()
    if not MODEL.exists():
        subprocess.run([sys.executable, str(HERE / "make_models.py")], check=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, method, ours, theirs in cases(args.quick):
            if args.only not in name:
                continue
            e, t = [], []
            for _ in range(args.reps):
                e.append(esegeta_seconds(method, ours, args.threads, f"{tmp}/{name}.npy"))
                t.append(torchray_seconds(name, theirs, args.threads))
            me, mt = statistics.median(e), statistics.median(t)
            rows.append(f"| {name} | {json.dumps(ours)} | {me:.2f} | {mt:.2f} | {me / mt:.2f} |")
    print(f"threads {args.threads}, {args.reps} repetition(s), medians in seconds")
    print("| method | parameters | esegeta | TorchRay | esegeta / TorchRay |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
