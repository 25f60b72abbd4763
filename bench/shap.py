"""esegeta's shap plugin against shap 0.51 itself, side by side in one run.

On the bench's ResNet-18 (bench/models/resnet18.pt, 1x3x224x224, target 3): the partition
explainer (Image masker `blur(128,128)`, shap's documented example, and a constant; 500
evaluations, shap's batch size 10) and the gradient explainer (200 samples, a background of 8
images, one target column): esegeta's method time (`esegeta explain --timing`, the plugin call
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


def cases(quick, background):
    evals, samples = (100, 40) if quick else (500, 200)
    return [
        ("partition_blur", "shap.partition_explainer", "partition",
         {"masker": "blur(128,128)", "max_evals": evals}),
        ("partition_constant", "shap.partition_explainer", "partition",
         {"masker": 0.0, "max_evals": evals}),
        ("gradient", "shap.gradient_explainer", "gradient",
         {"background": background, "nsamples": samples, "rseed": 0}),
    ]


def esegeta_seconds(method, params, threads, out):
    cmd = [str(ESEGETA), "explain", "--model", str(MODEL), "--input", str(IMAGE),
           "--method", method, "--params", json.dumps(params), "--target", str(TARGET),
           "--threads", str(threads), "--timing", "--out", out]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(l for l in done.stdout.splitlines() if l.startswith("timing: "))
    return json.loads(line[len("timing: "):])["method_s"]


def shap_seconds(kind, params, threads):
    cmd = [sys.executable, "-c", SHAP_CALL, kind, json.dumps(params), str(threads),
           str(MODEL), str(IMAGE), str(TARGET)]
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
        for name, method, kind, params in cases(args.quick, background):
            if args.only not in name:
                continue
            e, t = [], []
            for _ in range(args.reps):
                e.append(esegeta_seconds(method, params, args.threads, f"{tmp}/{name}.npy"))
                t.append(shap_seconds(kind, params, args.threads))
            me, mt = statistics.median(e), statistics.median(t)
            shown = {k: v for k, v in params.items() if k != "background"}
            rows.append(f"| {name} | {json.dumps(shown)} | {me:.2f} | {mt:.2f} | {me / mt:.2f} |")
    print(f"threads {args.threads}, {args.reps} repetition(s), medians in seconds")
    print("| case | parameters | esegeta | shap | esegeta / shap |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
