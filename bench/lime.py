"""esegeta's lime.lime_image against lime 0.2.0.1's LimeImageExplainer, side by side in one run.

1000 samples (lime's default), lime's default quickshift segmentation, hide_color None, the
default ridge and feature selection, one target, on two models: the bench's ResNet-18
(bench/models/resnet18.pt, where the model's forwards dominate) and the small CNN of the lime
fixtures (tests/fixtures/lime/cnn.pt, where lime's own per-sample work dominates), each on the
astronaut photo (scikit-image's, resized to the model's input: 224x224 and 128x128, in [0, 1]).
esegeta's time is the method's own (`esegeta explain --timing`: segmentation, sampling, batched
forwards and the fit); lime's is `explain_instance` (segmentation, `data_labels` with batches of
10, the fit), in a child process with the same TorchScript file and thread count. They
alternate, `--reps` times; the table gives medians and lime's time over esegeta's.

Usage: python bench/lime.py [--reps N] [--threads N] [--quick] [--only NAME]
  --quick: 200 samples, to see the ratio in a minute.
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
ROOT = HERE.parent
ESEGETA = ROOT / "target" / "release" / "esegeta"
MODELS = HERE / "models"
TARGET = 2

LIME_CALL = r"""
import json, sys, time
import numpy as np, torch
from lime import lime_image
threads, model_path, image_path, target, samples = sys.argv[1:6]
torch.set_num_threads(int(threads))
model = torch.jit.load(model_path).eval()
image = np.load(image_path)[0].transpose(1, 2, 0).astype(np.float64)

def classifier_fn(images):
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()
    with torch.no_grad():
        return model(x).double().numpy()

explainer = lime_image.LimeImageExplainer(random_state=0)
start = time.perf_counter()
explainer.explain_instance(image, classifier_fn, labels=(int(target),), top_labels=None,
                           num_samples=int(samples), random_seed=0)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def photo(size):
    """The astronaut at size x size, [1, 3, size, size] float32 in [0, 1]."""
    path = MODELS / f"lime_photo_{size}.npy"
    if not path.exists():
        from skimage import data, transform
        image = transform.resize(data.astronaut(), (size, size), anti_aliasing=True)
        MODELS.mkdir(exist_ok=True)
        np.save(path, image.transpose(2, 0, 1)[None].astype(np.float32))
    return path


def cases():
    """(name, model, image, esegeta's extra flags): `--freeze` runs the forward passes on the
    model frozen for inference (batch norms folded), which pays on the ResNet."""
    resnet, small = MODELS / "resnet18.pt", ROOT / "tests" / "fixtures" / "lime" / "cnn.pt"
    return [
        ("resnet18", resnet, photo(224), []),
        ("resnet18 --freeze", resnet, photo(224), ["--freeze"]),
        ("small_cnn", small, photo(128), []),
    ]


def esegeta_seconds(model, image, samples, threads, out, flags):
    cmd = [str(ESEGETA), "explain", "--model", str(model), "--input", str(image),
           "--method", "lime.lime_image", "--params", json.dumps({"num_samples": samples}),
           "--target", str(TARGET), "--threads", str(threads), "--timing", "--out", out, *flags]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(l for l in done.stdout.splitlines() if l.startswith("timing: "))
    return json.loads(line[len("timing: "):])["method_s"]


def lime_seconds(model, image, samples, threads):
    cmd = [sys.executable, "-c", LIME_CALL, str(threads), str(model), str(image), str(TARGET),
           str(samples)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="only the models whose name contains this")
    args = parser.parse_args()
    if not (MODELS / "resnet18.pt").exists():
        subprocess.run([sys.executable, str(HERE / "make_models.py")], check=True)
    samples = 200 if args.quick else 1000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, image, flags in cases():
            if args.only not in name:
                continue
            e, t = [], []
            for _ in range(args.reps):
                e.append(esegeta_seconds(model, image, samples, args.threads, f"{tmp}/map.npy", flags))
                t.append(lime_seconds(model, image, samples, args.threads))
            me, mt = statistics.median(e), statistics.median(t)
            rows.append(f"| {name} | {samples} | {me:.2f} | {mt:.2f} | {mt / me:.2f} |")
    print(f"threads {args.threads}, {args.reps} repetition(s), medians in seconds")
    print("| model | samples | esegeta | lime | lime / esegeta |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
