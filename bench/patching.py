"""A 256^3 volume explained with patching under a 4 GB memory budget.

Makes a 256^3 angiogram (configs/vessels/vessels_00.nii.gz upsampled 4x, trilinear), then
runs `esegeta run` on it with the vessel UNet (its ONNX export, made for 64^3 patches) through
the threshold wrapper: integrated gradients and occlusion on 64^3 patches (no overlap, 64
patches), `memory_budget_mb` 4096, one job per method in a child process. It prints each job's
time and peak resident memory from the run's manifest, and the largest of them must stay
under 4 GiB. Without patching the same model would need every activation of a 256^3 volume
at once: 64 times those of a 64^3 patch, about 13 GB for one example of integrated
gradients.

Usage: python bench/patching.py [--steps N]   (after make build)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ESEGETA = ROOT / "target" / "release" / "esegeta"
BUDGET_MIB = 4096


def volume_256(path):
    import nibabel as nib
    source = nib.load(str(ROOT / "configs" / "vessels" / "vessels_00.nii.gz"))
    data = torch.from_numpy(np.asarray(source.get_fdata(), dtype=np.float32))[None, None]
    big = F.interpolate(data, scale_factor=4, mode="trilinear", align_corners=False)[0, 0]
    affine = source.affine.copy()
    affine[:3, :3] /= 4
    nib.save(nib.Nifti1Image(big.numpy(), affine), str(path))


def config(volume, out, steps):
    return {
        "model": {"path": str(ROOT / "configs/vessels/models/unet.onnx"),
                  "task": "segmentation", "wrapper": "threshold"},
        "inputs": [{"path": str(volume), "targets": [1]}],
        "methods": [
            {"id": "captum.integrated_gradients", "params": {"n_steps": steps}},
            {"id": "captum.occlusion", "params": {"sliding_window_shapes": [1, 16, 16, 16],
                                                  "strides": [1, 16, 16, 16]}},
        ],
        "execution": {"patching": {"size": [64, 64, 64], "overlap": 0.0},
                      "memory_budget_mb": BUDGET_MIB, "isolation": "process"},
        "output": {"folder": str(out), "formats": ["npy"]},
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=16, help="integrated gradients' n_steps")
    args = p.parse_args()
    if not ESEGETA.exists():
        sys.exit(f"{ESEGETA} is missing; build it first (make build)")
    with tempfile.TemporaryDirectory(prefix="esegeta-patching-") as tmp:
        tmp = Path(tmp)
        volume_256(tmp / "vessels_256.nii.gz")
        (tmp / "run.json").write_text(json.dumps(config(tmp / "vessels_256.nii.gz",
                                                        tmp / "out", args.steps)))
        started = time.perf_counter()
        subprocess.run([str(ESEGETA), "run", str(tmp / "run.json")], check=True)
        seconds = time.perf_counter() - started
        manifest = json.loads((tmp / "out" / "results.json").read_text())
    jobs = manifest["jobs"]
    print(f"256^3 volume, 64^3 patches, memory_budget_mb {BUDGET_MIB}, {os.cpu_count()} CPUs, "
          f"{seconds:.0f} s in all")
    for job in jobs:
        print(f"- {job['method']}: {job['status']}, {job['duration_s']:.0f} s, "
              f"peak {job['peak_rss_mib']:.0f} MiB")
    peak = max(job["peak_rss_mib"] for job in jobs)
    if peak >= BUDGET_MIB or any(job["status"] != "done" for job in jobs):
        sys.exit(f"over budget or failed: peak {peak:.0f} MiB")


if __name__ == "__main__":
    main()
