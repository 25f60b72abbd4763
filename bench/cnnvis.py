"""esegeta's optimisation methods of the cnnvis plugin (DeepDream, layer visualisation,
inverted representation) against the plain-PyTorch references they follow
(tools/cnnvis_reference.py), side by side in one run.

On the bench's ResNet-18 (bench/models/resnet18.onnx for esegeta, the same weights as a
PyTorch module for the reference, 1x3x224x224) at block `layers.5` (the third stage): esegeta's method time
(`esegeta explain --timing`, the plugin call alone) and the reference's (the call alone, in a
child process with the same thread count), alternating, `--reps` times; the table gives
medians and esegeta's time as a fraction of the reference's (issue 16's target: at most 0.8).
esegeta's forward stops at the layer (layer values need nothing after it); so does the last
column's reference, whose hook raises once it has the value, as CNN-vis's scripts break out of
their loop over a Sequential's layers: like for like in work, it shows what is left.

Usage: python bench/cnnvis.py [--reps N] [--threads N] [--quick] [--only NAME]
  --quick: a fifth of the steps.
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
MODEL = HERE / "models" / "resnet18.onnx"
IMAGE = HERE / "models" / "image.npy"
LAYER = "layers.5"

REFERENCE_CALL = r"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, sys.argv[4])
sys.path.insert(0, sys.argv[5])
import cnnvis_reference as ref
import make_models
method, params, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
stop = sys.argv[7] == "stop"
torch.set_num_threads(threads)
model = make_models.eager("resnet18", make_models.MODELS / "resnet18.pt")
for p in model.parameters():
    p.requires_grad_(False)
x = torch.from_numpy(np.load(make_models.MODELS / "image.npy"))
layer_of = ref.layer_function(model, sys.argv[6], stop=stop)
start = time.perf_counter()
getattr(ref, method)(layer_of, x, 0, **params)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def cases(quick):
    k = 5 if quick else 1
    return [
        ("deep_dream", dict(filter=None, steps=10 // k, lr=1.5, octaves=3, octave_scale=1.4,
                            jitter=32)),
        ("layer_visualisation", dict(filter=5, steps=30 // k, lr=0.1, weight_decay=1e-6)),
        ("inverted_representation", dict(steps=50 // k, lr=0.1, decay_every=100,
                                         distance_weight=1.0, alpha=6.0, alpha_weight=1e-5,
                                         tv_beta=2.0, tv_weight=1e-3, init_sd=0.1)),
    ]


def esegeta_seconds(method, params, threads, out):
    cmd = [str(ESEGETA), "explain", "--model", str(MODEL), "--input", str(IMAGE),
           "--method", f"cnnvis.{method}", "--layer", LAYER, "--params", json.dumps(params),
           "--threads", str(threads), "--timing", "--out", out]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(l for l in done.stdout.splitlines() if l.startswith("timing: "))
    return json.loads(line[len("timing: "):])["method_s"]


def reference_seconds(method, params, threads, mode):
    cmd = [sys.executable, "-c", REFERENCE_CALL, method, json.dumps(params), str(threads),
           str(HERE.parent / "tools"), str(HERE), LAYER, mode]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="only the methods whose name contains this")
    args = parser.parse_args()
    if not MODEL.exists():
        subprocess.run([sys.executable, str(HERE / "make_models.py"), "--force"], check=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in cases(args.quick):
            if args.only not in name:
                continue
            e, r, rs = [], [], []
            for _ in range(args.reps):
                e.append(esegeta_seconds(name, params, args.threads, f"{tmp}/{name}.npy"))
                r.append(reference_seconds(name, params, args.threads, "full"))
                rs.append(reference_seconds(name, params, args.threads, "stop"))
            me, mr, ms = (statistics.median(t) for t in (e, r, rs))
            rows.append(f"| {name} | {json.dumps(params)} | {me:.2f} | {mr:.2f} | {me / mr:.2f} "
                        f"| {ms:.2f} | {me / ms:.2f} |")
    print(f"threads {args.threads}, {args.reps} repetition(s), medians in seconds")
    print("| method | parameters | esegeta | PyTorch reference | esegeta / reference "
          "| reference stopping at the layer | esegeta / it |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))

if __name__ == "__main__":
    main()
