"""References for CAMs on transformer token layers (tests/token_layers.rs): pytorch-grad-cam
1.5.7's maps with its documented `reshape_transform`s, on the zoo's small ViT and Swin.

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

Each reference is pytorch-grad-cam's map on the layer's grid before its display scaling,
``np.maximum(get_cam_image(...), 0)`` from its own hooks' (reshaped) activations and
gradients, as its ``compute_cam_per_layer`` takes it, `[B, 1, h, w]`; this equals Captum's
``LayerGradCam(relu_attributions=True)`` for GradCAM. Writes tests/fixtures/tokens/:
``vit.onnx``, ``swin.onnx`` (+ ``.data``), ``x.npy`` (two 32x32 RGB images), ``<case>.npy``
and ``cases.json``.

How to rerun
------------
From the repository root::

    . tools/env.sh && python tools/make_token_fixtures.py

It needs torch 2.13, torchvision, onnx and onnxscript, and pytorch-grad-cam 1.5.7
(``pip install grad-cam==1.5.7 torch==2.13.0``) in the esegeta virtualenv. Deterministic
(seeded, float32, CPU, one thread), the .onnx files aside.
"""

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
}


def raw_cam(model, layer, cls_name, reshape, x):
    """pytorch-grad-cam's map before display scaling, `[B, 1, h, w]`, and the layer's grid."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    module = model.get_submodule(layer)
    cam = getattr(pytorch_grad_cam, cls_name)(model=model, target_layers=[module],
                                              reshape_transform=reshape)
    targets = [ClassifierOutputTarget(TARGET)] * x.shape[0]
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
    return np.maximum(image, 0)[:, None].astype(np.float32), list(activations.shape[2:])


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    x = torch.rand((2, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    np.save(OUT / "x.npy", x.numpy())
    cases = []
    for name, (factory, reshape, layers) in MODELS.items():
        torch.manual_seed(0)
        model = no_zero_weights(factory().eval())
        args = SimpleNamespace(opset=None, optimize=False, dynamic_spatial=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dynamic = export_model.export_onnx(model, x, OUT / f"{name}.onnx", args)
        for layer, cls_name, method in layers:
            ref, grid = raw_cam(model, layer, cls_name, reshape, x)
            case = f"{name}_{method.split('.')[1]}_{layer.replace('.', '_')}"
            np.save(OUT / f"{case}.npy", ref)
            cases.append({"name": case, "model": f"{name}.onnx", "input": "x.npy",
                          "layer": layer, "method": method, "target": TARGET, "grid": grid,
                          "expected": f"{case}.npy",
                          "reference": f"pytorch_grad_cam.{cls_name}(reshape_transform="
                                       f"{reshape.__name__}), raw map before scaling"})
            print(f"{case}: grid {grid}, max|map| {float(np.abs(ref).max()):.4g} "
                  f"(ONNX batch: {dynamic or 'fixed'})")
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
