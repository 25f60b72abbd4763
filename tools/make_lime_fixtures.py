"""Build the lime reference fixtures (tests/fixtures/lime/) for lime.lime_image.

What it does
------------
Runs lime 0.2.0.1's ``LimeImageExplainer.explain_instance`` (its own quickshift segmentation,
``data_labels``, distances and ``LimeBase.explain_instance_with_data``) on a small real CNN
(``LimeCnn`` below, random weights, seeded, exported to TorchScript as
``lime/cnn.pt``) and the 128x128 astronaut photo of tests/fixtures/segment/photo.png, read as
esegeta reads a PNG (uint8 / 255 in float32; lime sees the same values in float64). The
classifier_fn lime calls runs the TorchScript module itself on the perturbed images, so lime
and esegeta score the same perturbations with the same model.

Cases (``lime/manifest.json``):

* given samples: lime's random stream replaced by a fixed 0/1 matrix (``samples.npy``, its
  first row all ones as lime's; drawn with NumPy's default_rng(7)), so that lime perturbs,
  scores and fits exactly those samples; one case per ``feature_selection`` (none, auto with
  lime's default num_features and with 5, forward_selection, highest_weights, lasso_path), with
  ``hide_color`` None (segment means) and 0, another ``kernel_width`` and ``distance_metric``.
  Each stores lime's ``local_exp`` (segment, weight), intercept, score and local_pred.
* lime's own random samples: ``LimeImageExplainer(random_state=seed)`` for seeds 0..4 with
  num_samples 1000 (lime's default), each seed's weights, for the seed-to-seed spread.

lime's segments (``segments.npy``, its quickshift with kernel_size 4, max_dist 200, ratio 0.2)
are saved too: esegeta's default segmentation must give the same labels.

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install lime==0.2.0.1 scikit-image==0.26.0 torch==2.13.0
    ~/.cache/esegeta/venv/bin/python tools/make_lime_fixtures.py

Seeded, float32 model, CPU, one thread; about half a minute.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from lime import lime_image
from skimage import io

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "lime"
PHOTO = "segment/photo.png"
TARGET = 2
SIZE_LIMIT = 1024 * 1024


class LimeCnn(nn.Module):
    """A small classifier of RGB images: two convolutions, global pooling, five classes, and a
    softmax, so that lime sees probabilities as its classifier_fn expects."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return torch.softmax(self.head(self.features(x).flatten(1)), dim=1)


def make_model():
    torch.manual_seed(0)
    model = LimeCnn().eval()
    with torch.no_grad():
        # Sharper logits than the default initialisation, so that hiding segments moves the
        # probabilities by more than rounding.
        model.head.weight.mul_(8.0)
    example = torch.rand(2, 3, 128, 128, requires_grad=True)
    traced = torch.jit.trace(model, example)
    traced.save(str(OUT / "cnn.pt"))
    return torch.jit.load(str(OUT / "cnn.pt"))


def classifier(model):
    def predict(images):
        # lime hands over [N, H, W, C] float64; the model takes [N, C, H, W] float32.
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()
        with torch.no_grad():
            return model(x).double().numpy()
    return predict


class GivenSamples:
    """Stands in for lime's random_state: ``randint(0, 2, n)`` returns the fixed samples."""

    def __init__(self, samples):
        self.samples = samples

    def randint(self, low, high, size=None):
        assert (low, high, size) == (0, 2, self.samples.size), (low, high, size)
        return self.samples.reshape(-1).copy()


def explain(image, model, random_state, **kwargs):
    """lime's explain_instance for the target alone, drawing its samples from random_state
    (random_seed only seeds the segmentation, which scikit-image 0.26's quickshift ignores)."""
    explainer = lime_image.LimeImageExplainer(
        kernel_width=kwargs.pop("kernel_width", 0.25),
        feature_selection=kwargs.pop("feature_selection", "auto"),
        random_state=0)
    explainer.random_state = random_state
    return explainer.explain_instance(image, classifier(model), labels=(TARGET,),
                                      top_labels=None, random_seed=0, **kwargs)


def record(exp):
    return {
        "local_exp": [[int(f), float(w)] for f, w in exp.local_exp[TARGET]],
        "intercept": float(exp.intercept[TARGET]),
        "score": float(exp.score),
        "local_pred": float(np.ravel(exp.local_pred)[0]),
    }


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    model = make_model()
    # As esegeta reads a PNG: uint8 / 255 in float32; lime gets the same values as float64.
    photo = io.imread(FIXTURES / PHOTO)[..., :3]
    image = (photo.astype(np.float32) / np.float32(255)).astype(np.float64)

    first = explain(image, model, np.random.RandomState(0), num_samples=10)
    segments = first.segments
    n_segments = len(np.unique(segments))
    assert segments.min() == 0 and segments.max() == n_segments - 1, "lime's columns are labels"
    np.save(OUT / "segments.npy", segments.astype(np.int64)[None])

    rng = np.random.default_rng(7)
    samples = rng.integers(0, 2, (300, n_segments))
    samples[0] = 1
    np.save(OUT / "samples.npy", samples.astype(np.float32))

    given = [
        ("auto_default", {}),
        ("auto_5", {"num_features": 5}),
        ("none", {"feature_selection": "none"}),
        ("forward_selection_4", {"feature_selection": "forward_selection", "num_features": 4}),
        ("highest_weights_6", {"feature_selection": "highest_weights", "num_features": 6}),
        ("lasso_path_5", {"feature_selection": "lasso_path", "num_features": 5}),
        ("lasso_path_10", {"feature_selection": "lasso_path", "num_features": 10}),
        ("hide_color_0", {"hide_color": 0}),
        ("kernel_width_1_euclidean", {"kernel_width": 1.0, "distance_metric": "euclidean"}),
    ]
    cases = []
    for name, params in given:
        kwargs = dict(params)
        kwargs["feature_selection"] = kwargs.get("feature_selection", "auto")
        exp = explain(image, model, GivenSamples(samples), num_samples=len(samples), **kwargs)
        assert np.array_equal(exp.segments, segments)
        cases.append({"name": name, "params": params, **record(exp)})
        print(name, "score", cases[-1]["score"], "features", len(cases[-1]["local_exp"]))

    seeds = []
    for seed in range(5):
        exp = explain(image, model, np.random.RandomState(seed), num_samples=1000)
        seeds.append({"random_seed": seed, **record(exp)})
        print("seed", seed, "score", seeds[-1]["score"])

    with torch.no_grad():
        x = torch.from_numpy(image.transpose(2, 0, 1)[None]).float()
        prediction = float(model(x)[0, TARGET])
    manifest = {
        "model": "lime/cnn.pt", "input": PHOTO, "target": TARGET, "segments": "lime/segments.npy",
        "samples": "lime/samples.npy", "num_segments": n_segments, "prediction": prediction,
        "given_samples": cases, "seeds": seeds,
        "versions": {"lime": "0.2.0.1", "torch": torch.__version__, "numpy": np.__version__},
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    assert total < SIZE_LIMIT, f"tests/fixtures/lime holds {total} bytes"
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    sys.exit(main())
