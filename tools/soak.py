"""A long run with resident memory and open files sampled: `make soak`.

Writes a config of at least 2000 jobs on the small ONNX classifier of tests/fixtures (every
method family: gradient, path, perturbation, Shapley/LIME, rule-based, layer, CAM, TorchRay,
RISE, a metric) over copies of its input, runs `esegeta run` on it, and samples the process's
VmRSS and open file descriptors every 0.2 s, with the count of finished jobs (`--events`).
Prints the figures and exits non-zero when the open files grow, or when resident memory grows
from the 10% of jobs finished (after warm-up) to the last (before the report is written) by
more than 5%, or by more than 8 KB per job: the manifest keeps every job's record in memory
as its compact JSON (about 1 KB for `captum.saliency`), so a method that leaks its maps (the
smallest here is 768 bytes, but each job makes many tensors) shows as more.

Usage: python tools/soak.py [--inputs N] [--keep DIR]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
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
    # `--events` says when each job finishes, so that memory is judged over the jobs alone:
    # the report written after the last one (many seconds for thousands of jobs) is not a leak.
    proc = subprocess.Popen([str(ESEGETA), "run", str(path), "--events"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    finished = [0]
    stderr = []
    threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True).start()

    def count_events():
        for line in proc.stdout:
            if '"job_finished"' in line:
                finished[0] += 1

    threading.Thread(target=count_events, daemon=True).start()
    samples = []  # (seconds, MiB, open files, jobs finished)
    while proc.poll() is None:
        try:
            samples.append((time.monotonic() - start,) + sample(proc.pid) + (finished[0],))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            break
        time.sleep(0.2)
    proc.wait()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        print("".join(stderr)[-2000:])
        sys.exit(f"soak: esegeta run failed with {proc.returncode}")
    manifest = json.loads((work / "out" / "results.json").read_text())
    done = sum(1 for j in manifest["jobs"] if j["status"] == "done")
    jobs_phase = [s for s in samples if s[3] < jobs]
    warm = [s for s in jobs_phase if s[3] >= 0.1 * jobs]
    base, last = warm[0], warm[-1]
    base_rss, base_fds = base[1], base[2]
    last_rss, last_fds = last[1], last[2]
    per_job_kb = (last_rss - base_rss) * 1024 / max(1, last[3] - base[3])
    final_fds = samples[-1][2]
    report_s = elapsed - jobs_phase[-1][0]
    print(f"soak: {done} of {jobs} jobs done in {elapsed:.0f} s ({jobs / elapsed:.1f} jobs/s, "
          f"the report {report_s:.0f} s of it), {len(samples)} samples")
    print(f"soak: resident memory after {base[3]} jobs {base_rss:.0f} MiB, after {last[3]} "
          f"{last_rss:.0f} MiB ({100 * (last_rss - base_rss) / base_rss:.1f}%, "
          f"{per_job_kb:.1f} KB per job), at the end {samples[-1][1]:.0f} MiB (the report "
          f"written)")
    print(f"soak: open files after warm-up {base_fds}, after the last job {last_fds}, at the "
          f"end {final_fds}")
    deciles = [jobs_phase[int(i * (len(jobs_phase) - 1) / 10)] for i in range(11)]
    print("soak: resident MiB over the jobs: " + " ".join(f"{s[1]:.0f}" for s in deciles))
    if args.keep:
        shutil.copytree(work, args.keep, dirs_exist_ok=True)
    shutil.rmtree(work)
    if done != jobs:
        sys.exit("soak: not every job finished")
    if per_job_kb > 8 or last_rss > 1.05 * base_rss or final_fds > base_fds:
        sys.exit("soak: memory or open files grew")


if __name__ == "__main__":
    main()
