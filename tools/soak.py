"""A long run with resident memory and open files sampled: `make soak`.

Writes a config of at least 2000 jobs on the small ONNX classifier of tests/fixtures (every
method family: gradient, path, perturbation, Shapley/LIME, rule-based, layer, CAM, TorchRay,
RISE, a metric) over copies of its input, runs `esegeta run` on it, and samples the process's
VmRSS and open file descriptors every 0.2 s. Prints the figures and exits non-zero when the
open files grow, or when resident memory grows, between 10% and 80% of the run's time (after
warm-up, before the report is written), by more than 16 KB per job: the manifest keeps every
job's record (its identity, files and extras) in memory, about 9 KB each, the same for a run
of `captum.saliency` alone as for every family together, so a method that leaks its maps
(the smallest here is 768 bytes, but each job makes many tensors) shows as more.

Usage: python tools/soak.py [--inputs N] [--keep DIR]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ESEGETA = ROOT / "target" / "release" / "esegeta"
FIXTURES = ROOT / "tests" / "fixtures"

METHODS = [
    {"id": "captum.saliency"},
    {"id": "captum.input_x_gradient"},
    {"id": "captum.integrated_gradients", "params": {"n_steps": 8}},
    {"id": "captum.occlusion", "params": {"sliding_window_shapes": [3, 2, 2]}},
    {"id": "captum.feature_ablation"},
    {"id": "captum.shapley_value_sampling", "params": {"n_samples": 2}},
    {"id": "captum.guided_backprop"},
    {"id": "captum.deeplift"},
    {"id": "captum.layer_grad_cam", "layer": "conv2"},
    {"id": "cnnvis.score_cam", "layer": "conv2"},
    {"id": "torchray.gradient"},
    {"id": "torchray.excitation_backprop", "layer": "conv2"},
    {"id": "torchray.rise", "params": {"num_masks": 32, "num_cells": 2}},
    {"id": "metrics.sparseness", "params": {"explained": {"method": "captum.saliency"}}},
]


def sample(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:"))
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return rss / 1024.0, fds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=50)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--methods", default="", help="only methods whose id contains this")
    args = parser.parse_args()
    methods = [m for m in METHODS if args.methods in m["id"]]
    work = Path(tempfile.mkdtemp(prefix="esegeta-soak-"))
    inputs = work / "inputs"
    inputs.mkdir()
    for i in range(args.inputs):
        shutil.copy(FIXTURES / "onnx" / "classifier2d_x1.npy", inputs / f"x{i:04d}.npy")
    config = {
        "model": {"path": str(FIXTURES / "onnx" / "classifier2d.onnx")},
        "inputs": [{"path": str(inputs / "*.npy"), "targets": [0, 1, 2]}],
        "methods": methods,
        "execution": {"workers_per_device": 1},
        "output": {"folder": str(work / "out"), "formats": ["npy"]},
    }
    path = work / "soak.json"
    path.write_text(json.dumps(config))
    jobs = args.inputs * 3 * len(methods)
    print(f"soak: {jobs} jobs in {work}")
    start = time.monotonic()
    proc = subprocess.Popen([str(ESEGETA), "run", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    samples = []
    while proc.poll() is None:
        try:
            samples.append((time.monotonic() - start,) + sample(proc.pid))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            break
        time.sleep(0.2)
    stderr = proc.communicate()[1]
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        print(stderr[-2000:])
        sys.exit(f"soak: esegeta run failed with {proc.returncode}")
    manifest = json.loads((work / "out" / "results.json").read_text())
    done = sum(1 for j in manifest["jobs"] if j["status"] == "done")
    warm = [s for s in samples if 0.1 * elapsed <= s[0] <= 0.8 * elapsed]
    base_rss, base_fds = warm[0][1], warm[0][2]
    last_rss, last_fds = warm[-1][1], warm[-1][2]
    per_job_kb = (last_rss - base_rss) * 1024 / (0.7 * jobs)
    final_fds = samples[-1][2]
    print(f"soak: {done} of {jobs} jobs done in {elapsed:.0f} s ({jobs / elapsed:.1f} jobs/s), "
          f"{len(samples)} samples")
    print(f"soak: resident memory at 10% of the run {base_rss:.0f} MiB, at 80% {last_rss:.0f} "
          f"MiB ({100 * (last_rss - base_rss) / base_rss:.1f}%, {per_job_kb:.1f} KB per job), "
          f"at the end {samples[-1][1]:.0f} MiB (the report written)")
    print(f"soak: open files after warm-up {base_fds}, at 80% {last_fds}, at the end {final_fds}")
    deciles = [samples[int(i * (len(samples) - 1) / 10)] for i in range(11)]
    print("soak: resident MiB over the run: " + " ".join(f"{s[1]:.0f}" for s in deciles))
    if args.keep:
        shutil.copytree(work, args.keep, dirs_exist_ok=True)
    shutil.rmtree(work)
    if done != jobs:
        sys.exit("soak: not every job finished")
    if per_job_kb > 16 or final_fds > base_fds:
        sys.exit("soak: memory or open files grew")


if __name__ == "__main__":
    main()
