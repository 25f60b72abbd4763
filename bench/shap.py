"""esegeta's shap plugin against shap 0.51 itself, side by side in one run.

On the bench's ResNet-18 (bench/models/resnet18.pt, 1x3x224x224, target 3): the partition
explainer (Image masker `blur(128,128)`, shap's documented example, and a constant; 500
evaluations, shap's batch size 10; and blur on a small CNN, where the model is cheap) and the gradient explainer (200 samples, a background of 8
images, one target column; esegeta's default batch from the memory budget, and shap's 50): esegeta's method time (`esegeta explain --timing`, the plugin call
alone) and shap's (the call alone, in a child process with the same model file and thread
count), alternating, `--reps` times; the table gives medians and esegeta's time as a fraction
of shap's. `pip install shap opencv-python-headless torch==2.13.0`.

Usage: python bench/shap.py [--reps N] [--threads N] [--quick] [--only NAME]
  --quick: 100 evaluations and 40 samples, to see the ratio in a minute.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ESEGETA = HERE.parent / "target" / "release" / "esegeta"
MODEL = HERE / "models" / "resnet18.pt"
IMAGE = HERE / "models" / "image.npy"
TARGET = 3

SHAP_CALL = r"""
import json, sys, time
import numpy as np, torch, shap
method, params, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = torch.jit.load(sys.argv[4]).eval()
x = torch.from_numpy(np.load(sys.argv[5]))
target = int(sys.argv[6])
for p in model.parameters():
    p.requires_grad_(False)

class Column(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m
    def forward(self, x):
        return self.m(x)[:, target:target + 1]

if method == "partition":
    hwc = x.permute(0, 2, 3, 1).numpy()
    def f(images):
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)).numpy()
    masker = shap.maskers.Image(params["masker"], hwc.shape[1:])
    explainer = shap.explainers.Partition(f, masker)
    # A first small call compiles shap's numba functions, which should not count.
    explainer(hwc, max_evals=4, batch_size=10, outputs=np.array([target]), silent=True)
    start = time.perf_counter()
    explainer(hwc, max_evals=params["max_evals"], batch_size=10, outputs=np.array([target]),
              silent=True)
else:
    bg = torch.from_numpy(np.load(params["background"]))
    explainer = shap.GradientExplainer(Column(model), bg)
    start = time.perf_counter()
    explainer.shap_values(x, nsamples=params["nsamples"], rseed=0)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def small_cnn(path):
    """A small size-agnostic CNN (two convolutions, global pooling), traced: where the model is
    cheap, what each library adds around it shows."""
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(16, 10)).eval()
    with torch.no_grad():
        torch.jit.trace(net, torch.rand(2, 3, 224, 224)).save(path)
    return path


def cases(quick, background, small):
    """(name, model, method, shap's explainer, parameters, esegeta's extra flags): `--freeze`
    runs the forward passes on the model frozen for inference (batch norms folded)."""
    evals, samples = (100, 40) if quick else (500, 200)
    blur = {"masker": "blur(128,128)", "max_evals": evals}
    gradient = {"background": background, "nsamples": samples, "rseed": 0}
    return [
        ("partition_blur", MODEL, "shap.partition_explainer", "partition", blur, []),
        ("partition_blur --freeze", MODEL, "shap.partition_explainer", "partition", blur,
         ["--freeze"]),
        ("partition_constant", MODEL, "shap.partition_explainer", "partition",
         {"masker": 0.0, "max_evals": evals}, []),
        ("partition_blur_small_cnn", small, "shap.partition_explainer", "partition", blur, []),
        ("gradient", MODEL, "shap.gradient_explainer", "gradient", gradient, []),
        # shap's batch of 50 gradients, which the memory budget's default does not reach.
        ("gradient_batch50", MODEL, "shap.gradient_explainer", "gradient",
         {**gradient, "batch_size": 50}, []),
    ]


def esegeta_seconds(model, method, params, threads, out, flags):
    cmd = [str(ESEGETA), "explain", "--model", str(model), "--input", str(IMAGE),
           "--method", method, "--params", json.dumps(params), "--target", str(TARGET),
           "--threads", str(threads), "--timing", "--out", out, *flags]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(l for l in done.stdout.splitlines() if l.startswith("timing: "))
    return json.loads(line[len("timing: "):])["method_s"]


def shap_seconds(model, kind, params, threads):
    cmd = [sys.executable, "-c", SHAP_CALL, kind, json.dumps(params), str(threads),
           str(model), str(IMAGE), str(TARGET)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="only the cases whose name contains this")
    args = parser.parse_args()
    if not MODEL.exists():
        subprocess.run([sys.executable, str(HERE / "make_models.py")], check=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # A background of 8 images: the bench image, shifted and noised (seeded).
        x = np.load(IMAGE)
        rng = np.random.default_rng(0)
        bg = np.concatenate([np.roll(x, 8 * i, axis=3) + 0.1 * rng.standard_normal(x.shape)
                             for i in range(8)]).astype(np.float32)
        background = f"{tmp}/background.npy"
        np.save(background, bg)
        small = small_cnn(f"{tmp}/small_cnn.pt")
        for name, model, method, kind, params, flags in cases(args.quick, background, small):
            if args.only not in name:
                continue
            e, t = [], []
            for _ in range(args.reps):
                e.append(esegeta_seconds(model, method, params, args.threads,
                                         f"{tmp}/map.npy", flags))
                t.append(shap_seconds(model, kind, params, args.threads))
            me, mt = statistics.median(e), statistics.median(t)
            shown = {k: v for k, v in params.items() if k not in ("background", "rseed")}
            rows.append(f"| {name} | {json.dumps(shown)} | {me:.2f} | {mt:.2f} | {me / mt:.2f} |")
    print(f"threads {args.threads}, {args.reps} repetition(s), medians in seconds")
    print("| case | parameters | esegeta | shap | esegeta / shap |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
