"""Plain-PyTorch references of the cnnvis plugin's optimisation methods, written from their
papers (no installable library computes them): DeepDream (Mordvintsev, Olah & Tyka, 2015,
and its deepdream notebook), layer visualisation (Erhan et al., 2009, as CNN-visualisations'
``layer_visualisation.py`` runs it) and inverted representation (Mahendran & Vedaldi, 2015,
as CNN-visualisations' ``inverted_representation.py`` runs it). tools/make_cnnvis_fixtures.py
runs them; esegeta's methods must follow the same steps from the same seeded start.

Each takes ``layer_of(x)``, the layer's value for ``x`` (a forward pass up to the layer),
and returns the image after ``steps``. CNN-visualisations' own settings are followed where
they carry over to medical inputs; where they do not (its inverted representation's SGD at
learning rate 1e4, which diverges on volumes), the method's docs say what differs.
"""

import numpy as np
import torch
import torch.nn.functional as F


def adam(params, grad, state, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
    """One step of torch.optim.Adam (weight decay added to the gradient), written out so that
    the Rust side can follow it line by line."""
    state["t"] += 1
    grad = grad + weight_decay * params
    state["m"] = betas[0] * state["m"] + (1 - betas[0]) * grad
    state["v"] = betas[1] * state["v"] + (1 - betas[1]) * grad * grad
    m_hat = 1 - betas[0] ** state["t"]
    v_hat = 1 - betas[1] ** state["t"]
    return params - lr / m_hat * state["m"] / (state["v"].sqrt() / v_hat ** 0.5 + eps)


def layer_visualisation(layer_of, x, seed, filter, steps, lr, weight_decay):
    """Adam on an image from a seeded start uniform in the input's range at CNN-vis's grey
    level (150-180 of 255), maximising the filter's mean activation."""
    torch.manual_seed(seed)
    lo, hi = x.min(), x.max()
    image = lo + (hi - lo) * (150 / 255 + 30 / 255 * torch.rand(x.shape))
    state = {"t": 0, "m": torch.zeros_like(image), "v": torch.zeros_like(image)}
    for _ in range(steps):
        image = image.detach().requires_grad_(True)
        loss = -layer_of(image)[:, filter].mean()
        (grad,) = torch.autograd.grad(loss, image)
        image = adam(image.detach(), grad, state, lr, weight_decay)
    return image.detach()


def total_variation(x, beta):
    """sum over positions of (sum over spatial axes of the squared forward difference)^(beta/2),
    on the positions that have a neighbour along every axis."""
    spatial = x.dim() - 2
    inner = x[(slice(None), slice(None)) + (slice(None, -1),) * spatial]
    squares = 0
    for axis in range(spatial):
        shifted = [slice(None, -1)] * spatial
        shifted[axis] = slice(1, None)
        squares = squares + (x[(slice(None), slice(None)) + tuple(shifted)] - inner) ** 2
    return (squares ** (beta / 2)).sum()


def inverted_representation(layer_of, x, seed, steps, lr, decay_every, distance_weight,
                            alpha, alpha_weight, tv_beta, tv_weight, init_sd):
    """Adam on z, the image in units of the input's mean and deviation (x = mean + sd * z),
    from seeded noise of init_sd, minimising the normalised squared distance of the image's
    representation to the input's plus the alpha-norm and total-variation priors on z (both
    per position); the learning rate falls tenfold every `decay_every` steps."""
    target = layer_of(x).detach()
    mean, sd = x.mean(), x.std().clamp_min(1e-12)
    torch.manual_seed(seed)
    z = torch.randn(x.shape) * init_sd
    state = {"t": 0, "m": torch.zeros_like(z), "v": torch.zeros_like(z)}
    for step in range(1, steps + 1):
        z = z.detach().requires_grad_(True)
        distance = ((layer_of(z * sd + mean) - target) ** 2).sum() / (target ** 2).sum()
        loss = (distance_weight * distance + alpha_weight * (z.abs() ** alpha).mean()
                + tv_weight * total_variation(z, tv_beta) / z.numel())
        (grad,) = torch.autograd.grad(loss, z)
        z = adam(z.detach(), grad, state, lr, 0.0)
        if step % decay_every == 0:
            lr = lr / 10
    return (z * sd + mean).detach()


def octave_sizes(spatial, octaves, scale):
    """The spatial size of each octave, smallest first; the last is the input's."""
    return [[max(1, int(np.floor(s / scale ** k + 0.5))) for s in spatial]
            for k in range(octaves - 1, -1, -1)]


def resize(x, size):
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def deep_dream(layer_of, x, seed, filter, steps, lr, octaves, octave_scale, jitter):
    """Gradient ascent on 1/2 |A|^2 (the layer, or one filter), from the input, octave by
    octave from the smallest: each step rolls the image by a random shift of up to `jitter`
    positions per axis, moves it by lr * g / mean|g| and rolls it back, clipped to the
    input's range; the detail an octave adds is carried up to the next. The model sees each
    octave resampled to the input's size (exported graphs take one size)."""
    torch.manual_seed(seed)
    lo, hi = x.min(), x.max()
    spatial = list(x.shape[2:])
    axes = list(range(2, x.dim()))
    detail = None
    for size in octave_sizes(spatial, octaves, octave_scale):
        base = resize(x, size) if size != spatial else x
        detail = torch.zeros_like(base) if detail is None else resize(detail, size)
        image = base + detail
        for _ in range(steps):
            shift = torch.randint(-jitter, jitter + 1, (len(axes),)).tolist()
            rolled = torch.roll(image, shift, axes).detach().requires_grad_(True)
            seen = rolled if list(rolled.shape[2:]) == spatial else resize(rolled, spatial)
            activation = layer_of(seen)
            if filter is not None:
                activation = activation[:, filter]
            (grad,) = torch.autograd.grad(0.5 * (activation ** 2).sum(), rolled)
            rolled = rolled.detach() + lr / (grad.abs().mean() + 1e-8) * grad
            image = torch.roll(rolled, [-s for s in shift], axes).clamp(lo, hi)
        detail = image - base
    return image.detach()


class _Captured(Exception):
    """Raised by a stopping hook once it has the layer's value."""


def layer_function(model, layer, stop=False):
    """`x -> the value of model's module `layer`` (a forward hook; the rest of the forward
    runs too, as for any module hooked this way, unless `stop`: the hook then raises once it
    has the value, as CNN-vis's scripts break out of their layer loop)."""
    module = dict(model.named_modules())[layer]

    def layer_of(x):
        seen = {}

        def hook(m, i, o):
            seen.setdefault("v", o)
            if stop:
                raise _Captured

        handle = module.register_forward_hook(hook)
        try:
            model(x)
        except _Captured:
            pass
        finally:
            handle.remove()
        return seen["v"]
    return layer_of


def write_cases(out, models, layers_dir, load_input):
    """Runs each method on the fixture models; returns the case list of optimise.json."""
    cases = []

    def case(name, model_file, x_file, method, layer, params, run):
        x = load_input(x_file)
        layer_of = layer_function(models[model_file], layer)
        image = run(layer_of, x, 0, **params)
        np.save(out / f"{name}.npy", image.numpy().astype(np.float32))
        cases.append({"name": name, "model": f"../layers/{model_file}",
                      "input": f"../layers/{x_file}", "method": f"cnnvis.{method}",
                      "layer": layer, "params": params, "expected": f"{name}.npy"})

    lv = dict(filter=5, steps=5, lr=0.1, weight_decay=1e-6)
    case("c2d_layer_visualisation_conv2", "classifier2d.onnx", "c2d_x.npy",
         "layer_visualisation", "conv2", lv, layer_visualisation)
    case("s3d_layer_visualisation_mid", "segmenter3d.onnx", "s3d_x.npy",
         "layer_visualisation", "mid", dict(lv, filter=2), layer_visualisation)
    ir = dict(steps=5, lr=0.1, decay_every=100, distance_weight=1.0, alpha=6.0,
              alpha_weight=1e-5, tv_beta=2.0, tv_weight=1e-3, init_sd=0.1)
    case("c2d_inverted_representation_conv2", "classifier2d.onnx", "c2d_x.npy",
         "inverted_representation", "conv2", dict(ir, decay_every=2), inverted_representation)
    case("s3d_inverted_representation_mid", "segmenter3d.onnx", "s3d_x.npy",
         "inverted_representation", "mid", dict(ir, alpha_weight=1e-2, tv_weight=1e-1, alpha=3.0),
         inverted_representation)
    dd = dict(filter=None, steps=3, lr=1.5, octaves=2, octave_scale=1.4, jitter=2)
    case("c2d_deep_dream_conv2", "classifier2d.onnx", "c2d_x.npy", "deep_dream", "conv2",
         dd, deep_dream)
    case("c2d_deep_dream_conv2_filter", "classifier2d.onnx", "c2d_x.npy", "deep_dream",
         "conv2", dict(dd, filter=4, octaves=1), deep_dream)
    case("s3d_deep_dream_mid", "segmenter3d.onnx", "s3d_x.npy", "deep_dream", "mid",
         dict(dd, jitter=1), deep_dream)
    return cases
