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


def lucent(model, x, p):
    """Lucent's render_vis of the case's objective, as esegeta's parameters describe it."""
    objective = f"{p['layer']}:{p['channel']}"
    if p.get("neuron") == "centre":
        objective = objectives.neuron(p["layer"], p["channel"])
    size = tuple(x.shape[2:])
    channels = None if x.shape[1] == 3 else x.shape[1]
    torch.manual_seed(SEED)
    images = render.render_vis(
        model, objective,
        param_f=lambda: param.image(size[1], size[0], fft=p.get("fft", True),
                                    channels=channels),
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
