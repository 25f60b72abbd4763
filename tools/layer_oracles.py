"""The references of tools/make_layer_fixtures.py that are not Captum: zennit's LRP for the
rule composites, and pytorch-grad-cam 1.5.7's gradient CAMs and Score-CAM, each as its map on
the layer's grid before display scaling (what esegeta's layer methods return).
"""

import numpy as np
import torch
import torch.nn as nn


def zennit_lrp(c, model, fn, x):
    """zennit's relevance for case `c`'s rules on `model` (explained through `fn`, the model or
    its task wrapper) at `x`, scaled by the target score as captum.lrp's (zennit starts from a
    one-hot output gradient, Captum from the score)."""
    from zennit.attribution import Gradient
    from zennit.composites import NameMapComposite
    from zennit.rules import AlphaBeta, Epsilon, Pass, ZBox, ZPlus
    rules = {"epsilon": lambda p: Epsilon(epsilon=p["epsilon"]),
             "alpha_beta": lambda p: AlphaBeta(alpha=p["alpha"], beta=p["beta"]),
             "z_plus": lambda p: ZPlus(), "z_box": lambda p: ZBox(low=p["low"], high=p["high"]),
             "pass_through": lambda p: Pass()}
    mapping = []
    for entry in c["params"]["rules"]:
        names = entry.get("layers") or [n for n, m in model.named_modules()
                                        if isinstance(m, nn.ReLU)]
        mapping.append((names, rules[entry["rule"]["name"]](entry["rule"])))
    x = x.clone().requires_grad_(True)
    one_hot = lambda out: torch.eye(out.shape[1])[[c["target"]] * out.shape[0]] * out  # noqa
    with Gradient(model=fn, composite=NameMapComposite(name_map=[
            ([("model." + n if fn is not model else n) for n in names], r)
            for names, r in mapping])) as attributor:
        _, relevance = attributor(x, one_hot)
    return relevance.detach()


# cnnvis's gradient CAMs and pytorch-grad-cam's classes for them.
GRADIENT_CAMS = {"grad_cam_plus_plus": "GradCAMPlusPlus", "layer_cam": "LayerCAM",
                 "xgrad_cam": "XGradCAM", "hires_cam": "HiResCAM"}


def gradient_cam(c, module, fn, x):
    """pytorch-grad-cam's map on the layer's grid before its display scaling, from its own
    hooks' activations and gradients of the summed targets: np.maximum(get_cam_image(...), 0),
    as its compute_cam_per_layer takes it, `[B, 1, ...]`."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    cls = getattr(pytorch_grad_cam, GRADIENT_CAMS[c["method"].removeprefix("cnnvis.")])
    cam = cls(model=fn, target_layers=[module])
    outputs = cam.activations_and_grads(x)
    targets = [ClassifierOutputTarget(c["target"])] * x.shape[0]
    sum(t(o) for t, o in zip(targets, outputs)).backward()
    grads = cam.activations_and_grads
    activations = grads.activations[0].cpu().numpy()
    gradients = grads.gradients[0].cpu().numpy()
    image = cam.get_cam_image(x, module, targets, activations, gradients, False)
    grads.release()
    return torch.from_numpy(np.maximum(image, 0)).unsqueeze(1)


def score_cam(model, layer, x, target, params):
    """pytorch-grad-cam's ScoreCAM map on the layer's grid before its display scaling:
    np.maximum(get_cam_image(...), 0), as its compute_cam_per_layer takes it, `[B, 1, ...]`."""
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    module = model.get_submodule(layer)
    cam = ScoreCAM(model=model, target_layers=[module])
    cam.batch_size = params.get("perturbations_per_eval", 16)
    with torch.no_grad():
        cam.activations_and_grads(x)
    activations = cam.activations_and_grads.activations[0].cpu().numpy()
    targets = [ClassifierOutputTarget(target)] * x.shape[0]
    image = cam.get_cam_image(x, module, targets, activations, None)
    cam.activations_and_grads.release()
    return torch.from_numpy(np.maximum(image, 0)).unsqueeze(1)
