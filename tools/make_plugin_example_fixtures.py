"""Reference maps for examples/plugin-example's `example.blur_integrated_gradients`.

The oracle is PAIR's `saliency` 0.2.1 (`pip install saliency==0.2.1 torch==2.13.0`): its
`saliency.core.BlurIG` (Xu et al. 2020, "Attribution in Scale and Space") on the test suite's
TorchScript models, written under tests/fixtures/plugin_example/:

* ``c2d_<case>.npy``  [1, 3, 8, 8] maps of tests/fixtures/classifier2d.pt at
  classifier2d_x.npy (target 2), NCHW as esegeta writes them;
* ``s3d_<case>.npy``  [1, 1, 8, 8, 8] maps of tests/fixtures/segmenter3d.pt at seg3d_x.npy,
  the argmax wrapper with a fixed mask, target 1 (class 1's output summed over the voxels the
  unperturbed input assigns to it). saliency's blur is 2D (``sigma=[s, s, 0]`` on H x W x C);
  for volumes it is extended here to the three spatial axes (``[s, s, s, 0]``), the blur the
  plugin uses on volumes, and the rest of BlurIG's loop is saliency's own;
* ``cases.json``  each case's parameters, and ``float32_noise``: how far BlurIG's map with the
  model in float32 lies from the reference, relative to the map's largest value.

The reference maps are BlurIG with the model in float64 (``model.double()``): the default
``max_sigma`` 50 blurs an 8-pixel image to almost zero, where ReLU inputs sit within float32
rounding of zero, and a float32 map then moves by up to 0.6% of its scale with the batch
shape, the machine or the blur's last bit (measured: 2D 5.9e-3, 3D 2.6e-5; the small-blur
cases 1e-7 to 2e-7). Against a float64 reference esegeta's fp64 run is checked tightly, and
its fp32 run within the float32 noise the oracle itself shows. Images are given to BlurIG in
float64 either way: its finite difference ``(blur(x, s + grad_step) - blur(x, s)) / grad_step``
with grad_step 0.01 loses about three digits in float32. batch_size is 1, saliency's default
(with more, saliency weights a whole batch by its last step's sigma difference; the plugin
weights every step by its own).

    python tools/make_plugin_example_fixtures.py
"""

import copy
import json
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
import saliency.core as saliency
import saliency.core.blur_ig as blur_ig

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
OUT = FIX / "plugin_example"

CASES = [
    # name, params (BlurIG's keyword names)
    ("blur_ig", {}),
    ("blur_ig_sigma3_steps20_sqrt", {"max_sigma": 3.0, "steps": 20, "sqrt": True}),
    ("blur_ig_sigma2_steps10_step005", {"max_sigma": 2.0, "steps": 10, "grad_step": 0.05}),
]


def gradients_2d(model, target, dtype):
    def call(x_batch, call_model_args=None, expected_keys=None):
        # saliency hands H x W x C images; the model takes N x C x H x W.
        x = torch.from_numpy(np.asarray(x_batch)).permute(0, 3, 1, 2).to(dtype)
        x.requires_grad_(True)
        score = model(x)[:, target].sum()
        (grad,) = torch.autograd.grad(score, x)
        return {saliency.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).double().numpy()}

    return call


def gradients_3d(model, target, mask, dtype):
    def call(x_batch, call_model_args=None, expected_keys=None):
        x = torch.from_numpy(np.asarray(x_batch)).permute(0, 4, 1, 2, 3).to(dtype)
        x.requires_grad_(True)
        score = (model(x)[:, target] * mask.to(dtype)).sum()
        (grad,) = torch.autograd.grad(score, x)
        return {saliency.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 4, 1).double().numpy()}

    return call


def blur_3d(image, sigma):
    """saliency's gaussian_blur on D x H x W x C: every spatial axis, not the channels."""
    if sigma == 0:
        return image
    return ndimage.gaussian_filter(image, sigma=[sigma, sigma, sigma, 0], mode="constant")


def both_precisions(model):
    """The model in float32, then a float64 copy (the reference)."""
    return [(model.float(), torch.float32), (copy.deepcopy(model).double(), torch.float64)]


def save(case, maps, cases):
    """Writes the float64 map as the reference; records the float32 map's distance from it."""
    single, double = maps
    scale = np.abs(double).max()
    noise = float(np.abs(single - double).max() / scale)
    np.save(OUT / f"{case}.npy", double)
    cases[case]["float32_noise"] = noise
    print(f"{case}: max |map| {scale:.4g}, sum {double.sum():.4g}, float32 noise {noise:.2g}")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    cases = {}

    clf = torch.jit.load(str(FIX / "classifier2d.pt")).eval()
    x2 = np.load(FIX / "classifier2d_x.npy")  # [1, 3, 8, 8]
    image = x2[0].transpose(1, 2, 0).astype(np.float64)  # H x W x C
    for name, params in CASES:
        maps = [saliency.BlurIG().GetMask(image, gradients_2d(model, 2, dtype), batch_size=1,
                                          **params).transpose(2, 0, 1)[None]
                for model, dtype in both_precisions(clf)]
        cases[f"c2d_{name}"] = {"model": "classifier2d.pt", "input": "classifier2d_x.npy",
                                "target": 2, "params": params}
        save(f"c2d_{name}", maps, cases)

    seg = torch.jit.load(str(FIX / "segmenter3d.pt")).eval()
    x3 = np.load(FIX / "seg3d_x.npy")  # [1, 1, 8, 8, 8]
    with torch.no_grad():
        mask = (seg(torch.from_numpy(x3)).argmax(1) == 1).float()
    volume = x3[0].transpose(1, 2, 3, 0).astype(np.float64)  # D x H x W x C
    blur_2d = blur_ig.gaussian_blur
    blur_ig.gaussian_blur = blur_3d
    try:
        for name, params in CASES[:2]:
            maps = [saliency.BlurIG().GetMask(volume, gradients_3d(model, 1, mask, dtype),
                                              batch_size=1, **params).transpose(3, 0, 1, 2)[None]
                    for model, dtype in both_precisions(seg)]
            cases[f"s3d_{name}"] = {"model": "segmenter3d.pt", "input": "seg3d_x.npy",
                                    "target": 1, "wrapper": "argmax", "fixed_mask": True,
                                    "params": params}
            save(f"s3d_{name}", maps, cases)
    finally:
        blur_ig.gaussian_blur = blur_2d
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
