"""Lucent's references for the featvis plugin (plugins/featvis).

What it does
------------
Builds two small seeded classifiers, an RGB one on 12x16 images and a grey one on 15x15
(the size of a medical slice's patch, one channel, no colour decorrelation), exports them to
ONNX, and renders feature visualisations of them with Lucent 0.1.8's ``render_vis``: the
deterministic settings (``transforms=[]``, the image at the input's size), so that esegeta,
which draws the same random start from torch's generator after the same seed, must arrive at
the same image. Writes ``tests/fixtures/featvis/`` with ``cases.json`` (the shape
tests/common/captum.rs reads); tests/featvis.rs checks the images.

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install --no-deps torch-lucent==0.1.8
    ~/.cache/esegeta/venv/bin/pip install kornia decorator ipython   # Lucent's imports
    ~/.cache/esegeta/venv/bin/python tools/make_featvis_fixtures.py

Seeded, float32, CPU, one thread. The .onnx files differ in a few bytes between exports.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from lucent.optvis import objectives, param, render

from make_fixtures import start_fixtures
from make_incremental_fixtures import case

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "featvis"
# esegeta explain's default seed, which the tests use.
SEED = 0


class Classifier(nn.Module):
    """conv-relu-maxpool-conv-relu-global pool-linear, on any image size."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 6, 3, padding=1)
        self.act1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.act2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h = self.pool(self.act1(self.conv1(x)))
        h = self.gap(self.act2(self.conv2(h)))
        return self.fc(torch.flatten(h, 1))


def export(model, x, name):
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(OUT / name), dynamo=True,
                          dynamic_shapes=({0: batch},), verbose=False)


def lucent_objective(spec, layer):
    """esegeta's objective JSON as Lucent's objectives (a layer left out is `layer`). Lucent
    0.1.8 has no `layer` objective (Lucid's), so that one is Lucent's own Objective class
    around the layer's mean."""
    (kind, body), = spec.items()
    if kind == "sum":
        return objectives.Objective.sum(
            [t.get("weight", 1) * lucent_objective(t["objective"], layer) for t in body])
    name = body.get("layer", layer)
    if kind == "channel":
        return objectives.channel(name, body["channel"], batch=body.get("batch"))
    if kind == "neuron":
        position = body.get("position", "centre")
        x, y = (None, None) if position == "centre" else (position[1], position[0])
        return objectives.neuron(name, body["channel"], x=x, y=y, batch=body.get("batch"))
    if kind == "layer":
        return objectives.Objective(lambda model: -model(name).mean(), "layer")
    if kind == "direction":
        direction = torch.tensor(body["direction"], dtype=torch.float32)
        return objectives.direction(name, direction, batch=body.get("batch"))
    if kind == "diversity":
        return objectives.diversity(name)
    raise ValueError(kind)


def lucent(model, x, p):
    """Lucent's render_vis of the case's objective, as esegeta's parameters describe it."""
    if "objective" in p:
        objective = lucent_objective(p["objective"], p.get("layer"))
    else:
        objective = f"{p['layer']}:{p['channel']}"
    if p.get("neuron") == "centre":
        objective = objectives.neuron(p["layer"], p["channel"])
    size = tuple(x.shape[2:])
    channels = None if x.shape[1] == 3 else x.shape[1]
    torch.manual_seed(SEED)
    images = render.render_vis(
        model, objective,
        param_f=lambda: param.image(size[1], size[0], fft=p.get("fft", True),
                                    channels=channels, batch=p.get("batch", 1)),
        transforms=[], preprocess=p.get("preprocess") == "imagenet",
        thresholds=(p["steps"],), progress=False, show_image=False,
        fixed_image_size=size)
    return np.transpose(images[-1], [0, 3, 1, 2])


def featvis_case(name, model, inp, params):
    """A case in cases.json's shape; Lucent's deterministic settings are esegeta's
    `transforms: none`. Tolerance: tests/common/captum.rs's default."""
    layer = params.pop("layer")
    return case(name, model, inp, "featvis.feature_visualisation",
                {**params, "transforms": "none"}, 0, layer=layer, tolerance=None)


def main():
    start_fixtures(OUT)
    models = {}
    for name, shape, seed in [("rgb", (1, 3, 12, 16), 21), ("grey", (1, 1, 15, 15), 22)]:
        torch.manual_seed(seed)
        model = Classifier(shape[1]).eval()
        x = torch.rand(shape)
        np.save(OUT / f"{name}_x.npy", x.numpy())
        export(model, x, f"{name}.onnx")
        models[name] = (model, x)
    specs = [
        ("rgb_conv2_channel", "rgb", {"layer": "conv2", "channel": 3, "steps": 64}),
        ("rgb_act1_pixels", "rgb", {"layer": "act1", "channel": 1, "steps": 64,
                                    "fft": False}),
        ("rgb_conv2_imagenet", "rgb", {"layer": "conv2", "channel": 5, "steps": 32,
                                       "preprocess": "imagenet"}),
        ("grey_conv2_channel", "grey", {"layer": "conv2", "channel": 2, "steps": 64}),
        ("grey_conv2_neuron", "grey", {"layer": "conv2", "channel": 6, "steps": 64,
                                      "neuron": "centre"}),
        # Lucent's other objectives and their sums (issue 16).
        ("rgb_conv2_layer", "rgb", {"layer": "conv2", "steps": 48,
                                    "objective": {"layer": {}}}),
        ("rgb_conv2_direction", "rgb", {"layer": "conv2", "steps": 48, "objective": {
            "direction": {"direction": [0.5, -1.0, 0.25, 0.0, 1.0, -0.5, 0.75, 0.1]}}}),
        # Diversity's weight amplifies float32 rounding from step to step (esegeta vs Lucent:
        # 4e-7 of scale after 1 step, 2.5e-5 after 8, 2.7e-2 after 48): 8 steps.
        ("rgb_diversity_sum", "rgb", {"layer": "conv2", "steps": 8, "batch": 3, "objective": {
            "sum": [{"objective": {"channel": {"channel": 3}}},
                    {"weight": -100.0, "objective": {"diversity": {"layer": "act1"}}}]}}),
        ("grey_neuron_batch_sum", "grey", {"layer": "conv2", "steps": 48, "batch": 2,
                                           "objective": {"sum": [
            {"weight": 0.5, "objective": {"neuron": {"channel": 1, "position": [3, 2],
                                                     "batch": 1}}},
            {"weight": 2.0, "objective": {"channel": {"channel": 4, "batch": 0}}}]}}),
    ]
    cases = []
    for name, model_name, params in specs:
        model, x = models[model_name]
        image = lucent(model, x, params)
        np.save(OUT / f"{name}.npy", image.astype(np.float32))
        cases.append(featvis_case(name, f"{model_name}.onnx", f"{model_name}_x.npy",
                                  dict(params)))
        print(f"{name}: image in [{image.min():.3f}, {image.max():.3f}]")
    (OUT / "cases.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    main()
