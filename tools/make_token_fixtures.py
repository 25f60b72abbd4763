"""References for CAMs on transformer token layers (tests/token_layers.rs): pytorch-grad-cam
1.5.7's maps with its documented `reshape_transform`s, on the zoo's small ViT and Swin, and in
3D on MONAI's ViT (class token) and UNETR (no class token; a segmenter, scored as esegeta's
argmax wrapper with a fixed mask scores it).

What it does
------------
Builds tools/make_zoo.py's `small_vit` (torchvision VisionTransformer, 32x32, 8x8 patches:
tokens `[B, 1 + 4*4, 32]`) and `small_swin` (torchvision SwinTransformer, 4x4 patches, stages
channels-last `[B, 8, 8, 24]` and `[B, 4, 4, 48]`) with seeded weights (the zoo's
`no_zero_weights`: torchvision's ViT head starts at zero, which would make every map 0),
exports each to ONNX with tools/export_model.py's own function, and runs pytorch-grad-cam on
the PyTorch module with the reshape_transform of its documentation (tutorials/vision
transformers, usage_examples/swinT_example.py):

* ViT: ``tensor[:, 1:, :].reshape(B, h, w, C).transpose(2, 3).transpose(1, 2)``
* Swin (torchvision's stages are already `[B, H, W, C]`): ``tensor.permute(0, 3, 1, 2)``

Each reference is pytorch-grad-cam's map with the model in float64 (``model.double()``), on
the layer's grid before its display scaling,
``np.maximum(get_cam_image(...), 0)`` from its own hooks' (reshaped) activations and
gradients, as its ``compute_cam_per_layer`` takes it, `[B, 1, h, w]`; this equals Captum's
``LayerGradCam(relu_attributions=True)`` for GradCAM. ``cases.json`` records each case's
``float32_noise``: how far pytorch-grad-cam's map with the model in float32 lies from the
float64 one, relative to its largest value (the UNETR's, 2.5e-3: its float32 maps differ
from float64 by that much in PyTorch and in esegeta alike, while esegeta's fp64 map equals
the reference to 1e-7). Writes tests/fixtures/tokens/: ``vit.onnx``, ``swin.onnx``,
``vit3d.onnx``, ``unetr.onnx`` (+ ``.data``), ``x.npy`` (two 32x32 RGB images),
``x_vit3d.npy`` (two 16^3 volumes), ``x_unetr.npy`` (two 32^3 volumes), ``<case>.npy`` and
``cases.json``.

How to rerun
------------
From the repository root::

    . tools/env.sh && python tools/make_token_fixtures.py

It needs torch 2.13, torchvision, onnx and onnxscript, and pytorch-grad-cam 1.5.7
(``pip install grad-cam==1.5.7 torch==2.13.0``) in the esegeta virtualenv. Deterministic
(seeded, float32, CPU, one thread), the .onnx files aside.
"""

import copy
import json
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_model  # noqa: E402
from make_zoo import no_zero_weights, small_swin, small_vit  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tokens"
TARGET = 3


def vit_reshape(tensor, height=4, width=4):
    """pytorch-grad-cam's documented ViT reshape_transform (class token dropped)."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def swin_reshape(tensor):
    """torchvision's Swin stages are `[B, H, W, C]`: channels first."""
    return tensor.permute(0, 3, 1, 2)


class Logits(torch.nn.Module):
    """MONAI's ViT returns `(logits, hidden states)`: the logits, as esegeta explains by
    default; the layers keep their names under `vit.`."""

    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, x):
        return self.vit(x)[0]


def vit3d():
    """MONAI's ViT on 16^3 volumes, 4^3 patches: tokens `[B, 1 + 4*4*4, 32]`."""
    from monai.networks.nets import ViT
    return Logits(ViT(in_channels=1, img_size=(16, 16, 16), patch_size=(4, 4, 4),
                      hidden_size=32, mlp_dim=64, num_layers=2, num_heads=4,
                      classification=True, num_classes=5))


def unetr():
    """MONAI's UNETR on 32^3 volumes (16^3 patches): tokens `[B, 2*2*2, 24]`, no class
    token; a segmenter, explained through the argmax wrapper with a fixed mask. Small widths
    keep the file near 1 MB."""
    from monai.networks.nets import UNETR
    return UNETR(in_channels=1, out_channels=2, img_size=(32, 32, 32), feature_size=4,
                 hidden_size=24, mlp_dim=48, num_heads=2)


def tokens_3d(leading, grid):
    """The 3D form of the documented ViT reshape_transform: `leading` tokens dropped, the
    rest onto the `grid`, channels first."""
    def reshape(tensor):
        result = tensor[:, leading:, :].reshape(tensor.size(0), *grid, tensor.size(2))
        return result.permute(0, 4, 1, 2, 3)
    reshape.__name__ = f"tokens_3d(leading={leading}, grid={grid})"
    return reshape


# model -> (factory, reshape_transform, [(layer, pytorch-grad-cam class, esegeta method)])
MODELS = {
    "vit": (small_vit, vit_reshape, [
        ("encoder.layers.encoder_layer_0", "GradCAM", "captum.layer_grad_cam"),
        ("encoder.layers.encoder_layer_0", "GradCAMPlusPlus", "cnnvis.grad_cam_plus_plus"),
        ("encoder.layers.encoder_layer_1.ln_1", "GradCAM", "captum.layer_grad_cam"),
        ("encoder.layers.encoder_layer_0", "ScoreCAM", "cnnvis.score_cam"),
    ]),
    "swin": (small_swin, swin_reshape, [
        ("features.3", "GradCAM", "captum.layer_grad_cam"),
        ("features.3", "XGradCAM", "cnnvis.xgrad_cam"),
        ("features.1", "GradCAM", "captum.layer_grad_cam"),
    ]),
    "vit3d": (vit3d, tokens_3d(1, (4, 4, 4)), [
        ("vit.blocks.0", "GradCAM", "captum.layer_grad_cam"),
        ("vit.blocks.0.mlp", "GradCAMPlusPlus", "cnnvis.grad_cam_plus_plus"),
        ("vit.blocks.1.norm1", "XGradCAM", "cnnvis.xgrad_cam"),
    ]),
    "unetr": (unetr, tokens_3d(0, (2, 2, 2)), [
        ("vit.blocks.2", "GradCAM", "captum.layer_grad_cam"),
    ]),
}
# The input of each model (by default two 32x32 RGB images, x.npy).
INPUTS = {
    "vit3d": ("x_vit3d.npy", (2, 1, 16, 16, 16)),
    "unetr": ("x_unetr.npy", (2, 1, 32, 32, 32)),
}
# Segmenters: explained through esegeta's argmax wrapper with a fixed mask, whose score is the
# target class's output summed over the voxels the unperturbed input assigns to it.
SEGMENTERS = {"unetr": 1}


def raw_cam(model, layer, cls_name, reshape, x, target=None):
    """pytorch-grad-cam's map before display scaling, `[B, 1, h, w]`, and the layer's grid;
    `target`, pytorch-grad-cam's per-example targets, by default class TARGET's score."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    module = model.get_submodule(layer)
    cam = getattr(pytorch_grad_cam, cls_name)(model=model, target_layers=[module],
                                              reshape_transform=reshape)
    targets = [ClassifierOutputTarget(TARGET)] * x.shape[0] if target is None else target
    hooks = cam.activations_and_grads
    if cls_name == "ScoreCAM":
        cam.batch_size = 16
        with torch.no_grad():
            hooks(x)
        gradients = None
    else:
        outputs = hooks(x)
        sum(t(o) for t, o in zip(targets, outputs)).backward()
        gradients = hooks.gradients[0].cpu().numpy()
    activations = hooks.activations[0].cpu().numpy()
    args = (x, module, targets, activations, gradients)
    image = cam.get_cam_image(*args) if cls_name == "ScoreCAM" else cam.get_cam_image(*args, False)
    hooks.release()
    return np.maximum(image, 0)[:, None], list(activations.shape[2:])


def fixed_mask_targets(model, x, category):
    """pytorch-grad-cam targets that score a segmentation as esegeta's argmax wrapper with a
    fixed mask does: `category`'s output summed over the voxels the unperturbed input assigns
    to it (pytorch-grad-cam's SemanticSegmentationTarget, in 3D)."""
    with torch.no_grad():
        out = model(x)
    masks = (out.argmax(1) == category).to(out.dtype)
    assert masks.sum() > 0, "the segmenter assigns no voxel to the target class"
    top2 = out.topk(2, dim=1).values
    margin = float((top2[:, 0] - top2[:, 1]).min())
    return ([lambda out, m=m: (out[category] * m).sum() for m in masks],
            {"wrapper": "argmax", "fixed_mask": True}), margin


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, (factory, reshape, layers) in MODELS.items():
        x_file, shape = INPUTS.get(name, ("x.npy", (2, 3, 32, 32)))
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        np.save(OUT / x_file, x.numpy())
        torch.manual_seed(0)
        model = no_zero_weights(factory().eval())
        double = copy.deepcopy(model).double()
        targets, extra = (None, None), {}
        if name in SEGMENTERS:
            # The mask from the float64 model; its smallest class margin is checked below.
            (targets, extra), margin = fixed_mask_targets(double, x.double(), SEGMENTERS[name])
            targets = (targets, targets)
            print(f"{name}: smallest class margin {margin:.2g}")
        args = SimpleNamespace(opset=None, optimize=False, dynamic_spatial=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dynamic = export_model.export_onnx(model, x, OUT / f"{name}.onnx", args)
        for layer, cls_name, method in layers:
            single, _ = raw_cam(model, layer, cls_name, reshape, x, targets[0])
            ref, grid = raw_cam(double, layer, cls_name, reshape, x.double(), targets[1])
            noise = float(np.abs(single - ref).max() / np.abs(ref).max())
            case = f"{name}_{method.split('.')[1]}_{layer.replace('.', '_')}"
            np.save(OUT / f"{case}.npy", ref)
            cases.append({"name": case, "model": f"{name}.onnx", "input": x_file,
                          "layer": layer, "method": method,
                          "target": SEGMENTERS.get(name, TARGET), "grid": grid,
                          "expected": f"{case}.npy",
                          "reference": f"pytorch_grad_cam.{cls_name}(reshape_transform="
                                       f"{reshape.__name__}), raw map before scaling",
                          "float32_noise": noise, **extra})
            print(f"{case}: grid {grid}, max|map| {float(np.abs(ref).max()):.4g}, float32 "
                  f"noise {noise:.2g} (ONNX batch: {dynamic or 'fixed'})")
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
