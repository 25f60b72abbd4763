"""Captum 0.9 reference values for esegeta's captum.infidelity and captum.sensitivity_max.

What it does
------------
Both metrics sample random perturbations, so esegeta (Rust's StdRng) and Captum (torch's
generator) cannot agree draw for draw. Instead this script runs Captum's own
``captum.metrics.infidelity`` and ``captum.metrics.sensitivity_max`` on the TorchScript
classifier of ``tests/fixtures`` several times with different seeds and records, per case
and per example, the values of every run, their mean and their spread (the largest distance
of a run from the mean, and the standard deviation). ``tests/metrics_captum.rs`` runs the same
case through ``esegeta explain`` once and requires it to land within 3 spreads of Captum's
mean: we must agree with Captum about as well as Captum agrees with itself.

Each case holds esegeta's parameters (``params``, passed verbatim to ``--params``); this
script translates them into the Captum call, so the two cannot drift apart:

* ``explained``: ``captum.saliency`` (``abs`` as given, Captum's default True) or
  ``captum.integrated_gradients`` (``n_steps``; Captum's default method ``gausslegendre``
  and zero baseline), i.e. ``Saliency(model).attribute`` / ``IntegratedGradients(model)
  .attribute`` with ``target``;
* infidelity's ``perturbation`` ``{"kind": "gaussian", "stdevs": s}``: Captum's tutorial
  ``perturb_fn`` returning ``(noise, inputs - noise)`` with ``noise ~ N(0, s²)``;
  ``{"kind": "square_removal", "size": k, "baselines": b}``: a random k x k square per
  perturbed row set to ``b``, wrapped in ``infidelity_perturb_func_decorator(True)`` (so the
  perturbation is ``(x - x') / (x - b)``) and called with ``baselines=b``;
* sensitivity_max: Captum's ``default_perturb_func`` (uniform in [-r, r]); ``norm_ord``
  ``"inf"``/``"-inf"`` become ``float("inf")``/``float("-inf")``.

Inputs: ``classifier2d.pt`` with ``classifier2d_x.npy`` ([1,3,8,8]) and
``classifier2d_x2.npy`` ([2,3,8,8]), as written by tools/make_fixtures.py (read only here).

How to rerun
------------
From the repository root::

    ~/.cache/esegeta/venv/bin/python tools/make_metric_fixtures.py

Deterministic (fixed seeds, float32, CPU, one thread): two runs write identical files. It
writes ``tests/fixtures/metrics/captum_metrics.json`` (about 20 KB) in about 15 s and
prints a table.
"""

import json
import math
import zlib
from pathlib import Path

import numpy as np
import torch
from captum.attr import IntegratedGradients, Saliency
from captum.metrics import (
    infidelity,
    infidelity_perturb_func_decorator,
    sensitivity_max,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "metrics"
RUNS = 20  # Captum runs per case, each with its own seed
SIZE_LIMIT = 50 * 1024

SALIENCY = {"method": "captum.saliency"}
SALIENCY_NOABS = {"method": "captum.saliency", "params": {"abs": False}}
IG10 = {"method": "captum.integrated_gradients", "params": {"n_steps": 10}}


def gaussian(stdevs):
    return {"kind": "gaussian", "stdevs": stdevs}


CASES = [
    # infidelity: a noise large enough that the score is well away from 0, many samples
    ("infidelity_saliency", "captum.infidelity", "classifier2d_x.npy",
     {"explained": SALIENCY, "perturbation": gaussian(0.05), "n_perturb_samples": 2000}),
    ("infidelity_saliency_b2", "captum.infidelity", "classifier2d_x2.npy",
     {"explained": SALIENCY, "perturbation": gaussian(0.05), "n_perturb_samples": 2000}),
    ("infidelity_saliency_normalize_b2", "captum.infidelity", "classifier2d_x2.npy",
     {"explained": SALIENCY, "perturbation": gaussian(0.05), "n_perturb_samples": 2000,
      "normalize": True}),
    ("infidelity_gradient", "captum.infidelity", "classifier2d_x.npy",
     {"explained": SALIENCY_NOABS, "perturbation": gaussian(0.05),
      "n_perturb_samples": 2000}),
    ("infidelity_ig", "captum.infidelity", "classifier2d_x.npy",
     {"explained": IG10, "perturbation": gaussian(0.05), "n_perturb_samples": 2000}),
    ("infidelity_ig_square_b2", "captum.infidelity", "classifier2d_x2.npy",
     {"explained": IG10, "perturbation": {"kind": "square_removal", "size": 4, "baselines": 0.0},
      "n_perturb_samples": 2000}),
    # a square as large as the input has one place: deterministic, Captum's runs agree
    ("infidelity_ig_square_full", "captum.infidelity", "classifier2d_x.npy",
     {"explained": IG10, "perturbation": {"kind": "square_removal", "size": 8},
      "n_perturb_samples": 10}),
    ("infidelity_gradient_square_full_b2", "captum.infidelity", "classifier2d_x2.npy",
     {"explained": SALIENCY_NOABS,
      "perturbation": {"kind": "square_removal", "size": 8, "baselines": 0.5},
      "n_perturb_samples": 10}),
    # sensitivity_max: the max over samples grows with their number; compare at 50
    ("sensitivity_saliency_b2", "captum.sensitivity_max", "classifier2d_x2.npy",
     {"explained": SALIENCY, "perturb_radius": 0.02, "n_perturb_samples": 50}),
    ("sensitivity_saliency_inf_b2", "captum.sensitivity_max", "classifier2d_x2.npy",
     {"explained": SALIENCY, "perturb_radius": 0.02, "n_perturb_samples": 50,
      "norm_ord": "inf"}),
    ("sensitivity_saliency_l1", "captum.sensitivity_max", "classifier2d_x.npy",
     {"explained": SALIENCY, "perturb_radius": 0.02, "n_perturb_samples": 50, "norm_ord": 1}),
    ("sensitivity_ig", "captum.sensitivity_max", "classifier2d_x.npy",
     {"explained": IG10, "perturb_radius": 0.02, "n_perturb_samples": 50}),
]
TARGET = 1
MODEL = "classifier2d.pt"


def name_seed(name):
    """A stable per-case seed, so cases do not depend on their order."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def explanation_func(model, explained):
    """Captum's attribute function for esegeta's `explained` parameter."""
    params = dict(explained.get("params", {}))
    if explained["method"] == "captum.saliency":
        algo, allowed = Saliency(model), {"abs"}
    elif explained["method"] == "captum.integrated_gradients":
        algo, allowed = IntegratedGradients(model), {"n_steps"}
    else:
        raise ValueError(f"no Captum translation for {explained['method']}")
    if set(params) - allowed:
        raise ValueError(f"untranslated parameters {set(params) - allowed}")
    return lambda x, **kw: algo.attribute(x, **kw, **params)


def perturb_func(perturbation):
    """Captum's perturb_func (and its baselines) for esegeta's `perturbation`."""
    if perturbation["kind"] == "gaussian":
        stdevs = perturbation["stdevs"]

        def gaussian_noise(inputs):
            noise = torch.randn(inputs.shape) * stdevs
            return noise, inputs - noise

        return gaussian_noise, None
    if perturbation["kind"] == "square_removal":
        size = perturbation["size"]

        @infidelity_perturb_func_decorator(True)
        def square_removal(inputs, baselines):
            rows, _, height, width = inputs.shape
            mask = torch.zeros(inputs.shape, dtype=torch.bool)
            tops = torch.randint(0, height - size + 1, (rows,))
            lefts = torch.randint(0, width - size + 1, (rows,))
            for r in range(rows):
                t, left = int(tops[r]), int(lefts[r])
                mask[r, :, t:t + size, left:left + size] = True
            return torch.where(mask, torch.full_like(inputs, baselines), inputs)

        return square_removal, perturbation.get("baselines", 0.0)
    raise ValueError(f"unknown perturbation {perturbation}")


def captum_run(model, x, metric, params, seed):
    """One Captum evaluation of the case: a list of one score per example."""
    explain = explanation_func(model, params["explained"])
    torch.manual_seed(seed)
    if metric == "captum.infidelity":
        func, baselines = perturb_func(params.get("perturbation", gaussian(0.003)))
        attributions = explain(x, target=TARGET)
        scores = infidelity(model, func, x, attributions, baselines=baselines,
                            target=TARGET,
                            n_perturb_samples=params.get("n_perturb_samples", 10),
                            normalize=params.get("normalize", False))
    elif metric == "captum.sensitivity_max":
        norm_ord = params.get("norm_ord", "fro")
        norm_ord = {"inf": math.inf, "-inf": -math.inf}.get(norm_ord, norm_ord)
        scores = sensitivity_max(explain, x, target=TARGET,
                                 perturb_radius=params.get("perturb_radius", 0.02),
                                 n_perturb_samples=params.get("n_perturb_samples", 10),
                                 norm_ord=norm_ord)
    else:
        raise ValueError(metric)
    scores = scores.detach().reshape(-1)
    assert scores.numel() == x.shape[0], scores.shape
    return [float(v) for v in scores]


def build_case(model, name, metric, input_name, params):
    x = torch.from_numpy(np.load(FIXTURES / input_name))
    runs = np.array([captum_run(model, x, metric, params, name_seed(name) + k)
                     for k in range(RUNS)])
    mean = runs.mean(axis=0)
    return {
        "name": name,
        "method": metric,
        "model": MODEL,
        "input": input_name,
        "target": TARGET,
        "params": params,
        "captum_runs": runs.tolist(),
        "captum_mean": mean.tolist(),
        "captum_std": runs.std(axis=0, ddof=1).tolist(),
        "captum_max_abs_dev": np.abs(runs - mean).max(axis=0).tolist(),
    }


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    model = torch.jit.load(str(FIXTURES / MODEL)).eval()
    cases = [build_case(model, *c) for c in CASES]
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {
        "about": "Captum 0.9 infidelity / sensitivity_max, "
                 f"{RUNS} runs with different seeds per case; made by "
                 "tools/make_metric_fixtures.py",
        "cases": cases,
    }
    path = OUT / "captum_metrics.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    size = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{'case':36} {'mean':>24} {'max |run - mean|':>24} {'std':>20}")
    for c in cases:
        fmt = lambda v: " ".join(f"{x:.4g}" for x in v)  # noqa: E731
        print(f"{c['name']:36} {fmt(c['captum_mean']):>24} "
              f"{fmt(c['captum_max_abs_dev']):>24} {fmt(c['captum_std']):>20}")
    print(f"{path.relative_to(ROOT)}: {size} bytes in tests/fixtures/metrics")
    if size > SIZE_LIMIT:
        raise SystemExit(f"fixtures too large: {size} > {SIZE_LIMIT} bytes")


if __name__ == "__main__":
    main()
