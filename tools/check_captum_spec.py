"""Check that the written description of Captum's layer and rule-based methods
is complete: re-derive some fixture maps of tests/fixtures/layers/ from plain
PyTorch ops, layer by layer, following that description (no Captum call), and
compare them with the maps Captum produced.

Covered on the 2D classifier (classifier2d.onnx's PyTorch twin): DeepLift
(rescale on the ReLUs, the 2B batch, plain max-pool gradient), LRP (epsilon
rule, ReLU pass-through, final multiplication by the target score),
GuidedBackprop, Deconvolution, LayerGradCam, GuidedGradCam (nearest
upsampling), LayerConductance (n_steps + 1 alphas, left gradients) and
InternalInfluence; on the 3D UNet through the fixed-mask argmax wrapper:
DeepLift and LayerDeepLift (rescale on the ReLUs with the plain gradient that
reaches each ReLU's output from both of its consumers, max-pool plain),
LayerIntegratedGradients (layer output replaced, skip branch from x) and
LayerFeatureAblation with a mask; on rules2d every DeepLift rule; GradientShap
with my own sampler (statistically: within 3x Captum's seed spread).

Run from the repository root after tools/make_layer_fixtures.py:

    . tools/env.sh && python tools/check_captum_spec.py

Tolerance: max|mine - captum| <= 1e-5 * max|captum| + 1e-7 (float32 sums in a
different order).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr._utils.approximation_methods import approximation_parameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_layer_fixtures as lf  # noqa: E402

FIX = lf.OUT
EPS_DEEPLIFT = 1e-10
EPS_LRP = 1e-9


def load(name):
    return torch.from_numpy(np.load(FIX / name))


def classifier():
    """The classifier exactly as make_layer_fixtures builds it."""
    torch.manual_seed(11)
    clf = lf.Classifier2d().eval()
    with torch.no_grad():
        for layer in (clf.conv1, clf.conv2, clf.fc):
            layer.weight.mul_(4.0)
    return clf


def stages(clf):
    """The classifier as a chain of (name, function) stages."""
    return [("conv1", clf.conv1), ("act1", clf.act1), ("pool1", clf.pool1),
            ("conv2", clf.conv2), ("act2", clf.act2), ("gap", clf.gap),
            ("flatten", lambda h: torch.flatten(h, 1)), ("fc", clf.fc)]


def forward_all(clf, x):
    """Inputs of every stage and the final output."""
    acts, h = [], x
    for _, f in stages(clf):
        acts.append(h)
        h = f(h)
    return acts, h


def vjp(f, inp, grad):
    inp = inp.detach().requires_grad_()
    return torch.autograd.grad(f(inp), inp, grad)[0]


def seed(out, target):
    g = torch.zeros_like(out)
    g[:, target] = 1.0
    return g


# --- gradient rules -------------------------------------------------------


def deeplift(clf, x, baseline, target):
    """Spec section 2 on a ReLU/MaxPool chain: one 2B batch, seeded on both
    halves; ReLU rescale with grad_out = plain gradient at the ReLU output;
    the max-pool after a hooked ReLU contributes its plain gradient."""
    both = torch.cat([x, baseline.expand_as(x)])
    acts, out = forward_all(clf, both)
    g = seed(out, target)
    for (name, f), a in reversed(list(zip(stages(clf), acts))):
        plain = vjp(f, a, g)
        if name.startswith("act"):
            b = x.shape[0]
            dz = torch.cat(2 * [a[:b] - a[b:]])
            out_a = f(a)
            dy = torch.cat(2 * [out_a[:b] - out_a[b:]])
            g = torch.where(dz.abs() < EPS_DEEPLIFT, plain, g * dy / dz)
        else:
            g = plain
    return (x - baseline) * g[: x.shape[0]]


def relu_rule_backprop(clf, x, target, rule):
    acts, out = forward_all(clf, x)
    g = seed(out, target)
    for (name, f), a in reversed(list(zip(stages(clf), acts))):
        if name.startswith("act"):
            g = F.relu(g) * (a > 0) if rule == "guided" else F.relu(g)
        else:
            g = vjp(f, a, g)
    return g


def lrp(clf, x, target):
    """Spec section 7: epsilon rule (1e-9) on conv/pool/linear, ReLU passes the
    relevance unchanged, start at 1 on the target, multiply by f_t at the end."""
    acts, out = forward_all(clf, x)
    r = seed(out, target)
    for (name, f), a in reversed(list(zip(stages(clf), acts))):
        if name.startswith("act") or name == "flatten":
            r = r if name.startswith("act") else vjp(f, a, r)
            continue
        z = f(a).detach()
        sign = torch.where(z >= 0, 1.0, -1.0)
        r = a * vjp(f, a, r / (z + EPS_LRP * sign))
    return r * out[:, target].detach().view(-1, 1, 1, 1)


class RescaleReLU(torch.autograd.Function):
    """ReLU on a [inputs; baselines] batch whose backward is DeepLift's rescale
    rule, applied to the total (plain) gradient arriving at its output."""

    @staticmethod
    def forward(ctx, u):
        y = F.relu(u)
        b = u.shape[0] // 2
        ctx.save_for_backward(u, torch.cat(2 * [u[:b] - u[b:]]),
                              torch.cat(2 * [y[:b] - y[b:]]))
        return y

    @staticmethod
    def backward(ctx, g):
        u, du, dy = ctx.saved_tensors
        return torch.where(du.abs() < EPS_DEEPLIFT, g * (u > 0), g * dy / du)


class RescaleReLUModule(torch.nn.Module):
    def forward(self, u):
        return RescaleReLU.apply(u)


def halves_diff(t):
    b = t.shape[0] // 2
    return torch.cat(2 * [t[:b] - t[b:]])


class RescaleElementwise(torch.autograd.Function):
    """Spec section 2, "nonlinear": any elementwise nonlinearity `fn`."""

    @staticmethod
    def forward(ctx, u, fn):
        with torch.enable_grad():
            u_ = u.detach().requires_grad_()
            y_ = fn(u_)
        ctx.save_for_backward(u_, y_)
        return y_.detach()

    @staticmethod
    def backward(ctx, g):
        u, y = ctx.saved_tensors
        with torch.enable_grad():
            plain = torch.autograd.grad(y, u, g)[0]
        du, dy = halves_diff(u), halves_diff(y.detach())
        return torch.where(du.abs() < EPS_DEEPLIFT, plain, g * dy / du), None


class SoftmaxRule(RescaleElementwise):
    """Spec section 2, "softmax": rescale, then minus the mean over the whole
    2B x K gradient."""

    @staticmethod
    def backward(ctx, g):
        r, _ = RescaleElementwise.backward(ctx, g)
        return r - r.sum() / r.numel(), None


class MaxPoolRule(torch.autograd.Function):
    """Spec section 2, "maxpool" (kernel = stride = 2, no padding)."""

    @staticmethod
    def forward(ctx, u):
        o, idx = F.max_pool2d(u, 2, 2, return_indices=True)
        ctx.save_for_backward(u, o, idx)
        return o

    @staticmethod
    def backward(ctx, g):
        u, o, idx = ctx.saved_tensors
        b = u.shape[0] // 2
        m = torch.maximum(o[:b], o[b:])
        delta_out = torch.cat([m - o[b:], o[:b] - m])
        un = F.max_unpool2d(g * delta_out, idx, 2, 2, output_size=u.shape[2:])
        s = torch.cat(2 * [un[:b] + un[b:]])
        plain = F.max_unpool2d(g, idx, 2, 2, output_size=u.shape[2:])
        du = halves_diff(u)
        return torch.where(du.abs() < EPS_DEEPLIFT, plain[0], s / du)


def rules2d():
    torch.manual_seed(13)
    m = lf.Rules2d().eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("weight"):
                p.mul_(3.0)
    return m


def deeplift_rules2d(x, baseline, target, layer=None):
    """Every DeepLift rule of Captum on a chain where none is bypassed."""
    m = rules2d()
    rescale = lambda fn: (lambda h: RescaleElementwise.apply(h, fn))  # noqa: E731
    both = torch.cat([x, baseline.expand_as(x)]).requires_grad_()
    h = MaxPoolRule.apply(m.conv1(both))
    h = m.gap(rescale(m.act2)(m.conv2(h)))
    a = m.fc1(torch.flatten(h, 1))
    h = rescale(m.act4)(m.fc2(rescale(m.act3)(a)))
    h = rescale(m.act6)(m.fc4(rescale(m.act5)(m.fc3(h))))
    out = SoftmaxRule.apply(m.fc5(h), m.softmax)
    wrt = both if layer is None else a
    g = torch.autograd.grad(out[:, target].sum(), wrt)[0]
    n = x.shape[0]
    return (wrt[:n] - wrt[n:]).detach() * g[:n]


def deeplift_shap_rules2d(x, baselines, target):
    """Spec section 3: repeat_interleave inputs, tile baselines, mean over N."""
    n = baselines.shape[0]
    xs = x.repeat_interleave(n, dim=0)
    bs = baselines.repeat(x.shape[0], 1, 1, 1)
    return deeplift_rules2d(xs, bs, target).view(x.shape[0], n, *x.shape[1:]).mean(1)


def segmenter():
    import make_fixtures as mf

    torch.manual_seed(12)
    seg = lf.Segmenter3d().eval()
    mf.balance_argmax(seg, load("s3d_x.npy"))
    return seg


def deeplift_segmenter(x, baseline, target, layer=None):
    """Spec section 2 / 13 on the UNet: ReLU modules swapped for the rescale
    rule, every other op (max-pool, upsample, concat, the fixed-mask argmax
    wrapper) with its plain gradient, one forward of the 2B batch."""
    import copy

    import make_fixtures as mf

    seg = segmenter()
    fixed = mf.ArgmaxScores(seg, x).fixed
    dl = copy.deepcopy(seg)
    dl.enc_act, dl.mid_act = RescaleReLUModule(), RescaleReLUModule()
    both = torch.cat([x, baseline.expand_as(x)]).requires_grad_()
    captured = {}
    if layer is not None:
        dl.get_submodule(layer).register_forward_hook(
            lambda m, i, o: captured.setdefault("a", o))
    scores = mf.spatial_sum(dl(both) * fixed)
    if layer is None:
        g = torch.autograd.grad(scores[:, target].sum(), both)[0]
        return (x - baseline) * g[: x.shape[0]]
    a = captured["a"]
    g = torch.autograd.grad(scores[:, target].sum(), a)[0]
    b = x.shape[0]
    return (a[:b] - a[b:]).detach() * g[:b]


def segmenter_scores_with(x, layer, replacement=None):
    """Argmax-fixed-mask scores of the UNet on x, optionally with the output of
    `layer` replaced (rows of `replacement` match rows of x)."""
    import make_fixtures as mf

    seg = segmenter()
    fixed = mf.ArgmaxScores(seg, load("s3d_x.npy")).fixed
    handle = None
    if replacement is not None:
        handle = seg.get_submodule(layer).register_forward_hook(lambda m, i, o: replacement)
    try:
        return mf.spatial_sum(seg(x) * fixed)
    finally:
        if handle is not None:
            handle.remove()


def layer_output(x, layer):
    seg, got = segmenter(), {}
    seg.get_submodule(layer).register_forward_hook(lambda m, i, o: got.setdefault("a", o))
    with torch.no_grad():
        seg(x)
    return got["a"]


def layer_ig_segmenter(x, baseline, target, layer, n_steps, method):
    """Spec section 12: IG over the layer output; the rest of the UNet (the
    skip branch too) sees x at every step."""
    steps_of, alphas_of = approximation_parameters(method)
    a_x, a_b = layer_output(x, layer), layer_output(baseline, layer)
    total = torch.zeros_like(a_x)
    for step, alpha in zip(steps_of(n_steps), alphas_of(n_steps)):
        a = (a_b + alpha * (a_x - a_b)).requires_grad_()
        score = segmenter_scores_with(x, layer, a)[:, target].sum()
        total += step * torch.autograd.grad(score, a)[0]
    return (a_x - a_b) * total


def layer_ablation_segmenter(x, target, layer, mask, value):
    """Spec section 15: each group of the layer output set to `value`."""
    a = layer_output(x, layer)
    with torch.no_grad():
        ref = segmenter_scores_with(x, layer)[:, target]
        attr = torch.zeros_like(a)
        full = mask.expand_as(a)
        for j in full.unique().tolist():
            ablated = torch.where(full == j, torch.full_like(a, value), a)
            drop = ref - segmenter_scores_with(x, layer, ablated)[:, target]
            attr = torch.where(full == j, drop.view(-1, *[1] * (a.dim() - 1)), attr)
    return attr


def gradient_shap(clf, x, baselines, target, n_samples, stdevs, seed):
    """Spec section 4 with my own sampler (statistical comparison only)."""
    gen = torch.Generator().manual_seed(seed)
    xs = x.repeat_interleave(n_samples, 0)
    noisy = xs + stdevs * torch.randn(xs.shape, generator=gen)
    base = baselines[torch.randint(0, baselines.shape[0], (xs.shape[0],), generator=gen)]
    alpha = torch.rand(xs.shape[0], 1, 1, 1, generator=gen)
    z = (alpha * noisy + (1 - alpha) * base).requires_grad_()
    g = torch.autograd.grad(clf(z)[:, target].sum(), z)[0]
    return ((noisy - base) * g).view(x.shape[0], n_samples, *x.shape[1:]).mean(1)


# --- layer methods on conv2 -------------------------------------------------


def layer_eval_and_grad(clf, x, target, layer="conv2"):
    """Layer output and the gradient of the target score w.r.t. it."""
    acts, _ = forward_all(clf, x)
    names = [n for n, _ in stages(clf)]
    k = names.index(layer)
    fs = [f for _, f in stages(clf)]
    a = fs[k](acts[k]).detach().requires_grad_()
    h = a
    for f in fs[k + 1:]:
        h = f(h)
    return a.detach(), torch.autograd.grad(h[:, target].sum(), a)[0]


def grad_cam(clf, x, target, layer, relu):
    a, g = layer_eval_and_grad(clf, x, target, layer)
    cam = (g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True)
    return F.relu(cam) if relu else cam


def guided_grad_cam(clf, x, target, layer):
    cam = grad_cam(clf, x, target, layer, relu=True)
    up = F.interpolate(cam, size=x.shape[2:], mode="nearest")
    return relu_rule_backprop(clf, x, target, "guided") * up


def conductance(clf, x, baseline, target, n_steps, method, layer):
    _, alphas_of = approximation_parameters(method)
    alphas = alphas_of(n_steps + 1)
    evals = [layer_eval_and_grad(clf, baseline + al * (x - baseline), target, layer)
             for al in alphas]
    return sum((evals[k + 1][0] - evals[k][0]) * evals[k][1] for k in range(n_steps))


def internal_influence(clf, x, baseline, target, n_steps, method, layer):
    steps_of, alphas_of = approximation_parameters(method)
    return sum(s * layer_eval_and_grad(clf, baseline + al * (x - baseline), target, layer)[1]
               for s, al in zip(steps_of(n_steps), alphas_of(n_steps)))


# --- comparison ----------------------------------------------------------------


def compare(name, mine, cases):
    c = cases[name]
    captum = load(c["expected"])
    diff = float((mine.detach() - captum).abs().max())
    scale = float(captum.abs().max())
    ok = diff <= 1e-5 * scale + 1e-7
    print(f"{'ok  ' if ok else 'FAIL'} {name:50s} max|diff| {diff:.3g} (max|captum| {scale:.3g})")
    return ok


def compare_sampled(name, mine, cases):
    """Within 3x the spread of Captum's own runs across seeds."""
    c = cases[name]
    captum = load(c["expected"])
    diff = float((mine.detach() - captum).abs().max())
    bound = 3 * c["extras"]["captum_other_seeds_max_abs_dev"]
    ok = diff <= bound
    print(f"{'ok  ' if ok else 'FAIL'} {name:50s} max|diff| {diff:.3g} <= 3 x Captum's "
          f"seed spread = {bound:.3g}")
    return ok


def main():
    torch.set_num_threads(1)
    cases = {c["name"]: c for c in json.loads((FIX / "cases.json").read_text())}
    clf = classifier()
    x, x2, b1 = load("c2d_x.npy"), load("c2d_x2.npy"), load("c2d_baseline.npy")
    zero = torch.zeros_like(x)
    checks = [
        ("c2d_deeplift_zero", deeplift(clf, x, zero, 1)),
        ("c2d_deeplift_baseline_b2", deeplift(clf, x2, b1, 2)),
        ("c2d_lrp", lrp(clf, x, 1)),
        ("c2d_lrp_b2", lrp(clf, x2, 2)),
        ("c2d_guided_backprop_b2", relu_rule_backprop(clf, x2, 2, "guided")),
        ("c2d_deconvolution_b2", relu_rule_backprop(clf, x2, 2, "deconv")),
        ("c2d_layer_grad_cam_conv2", grad_cam(clf, x, 1, "conv2", relu=False)),
        ("c2d_layer_grad_cam_act2_relu_b2", grad_cam(clf, x2, 0, "act2", relu=True)),
        ("c2d_guided_grad_cam_conv2", guided_grad_cam(clf, x, 1, "conv2")),
        ("c2d_guided_grad_cam_act1_b2", guided_grad_cam(clf, x2, 0, "act1")),
        ("c2d_layer_conductance_conv2",
         conductance(clf, x, zero, 1, 50, "gausslegendre", "conv2")),
        ("c2d_layer_conductance_act1_trapezoid_b2",
         conductance(clf, x2, b1, 2, 20, "riemann_trapezoid", "act1")),
        ("c2d_internal_influence_conv2",
         internal_influence(clf, x, zero, 1, 50, "gausslegendre", "conv2")),
        ("c2d_internal_influence_act1_left_b2",
         internal_influence(clf, x2, b1, 2, 20, "riemann_left", "act1")),
    ]
    x3, b3 = load("s3d_x.npy"), load("s3d_baseline.npy")
    checks += [
        ("s3d_argmax_deeplift_zero_fixed", deeplift_segmenter(x3, torch.zeros_like(x3), 1)),
        ("s3d_argmax_deeplift_baseline_fixed", deeplift_segmenter(x3, b3, 0)),
        ("s3d_argmax_layer_deeplift_mid_fixed", deeplift_segmenter(x3, b3, 1, "mid")),
    ]
    b4 = load("c2d_baselines4.npy")
    checks += [
        ("rules2d_deeplift_b2", deeplift_rules2d(x2, b1, 1)),
        ("rules2d_deeplift_zero_target2", deeplift_rules2d(x, zero, 2)),
        ("rules2d_deeplift_shap", deeplift_shap_rules2d(x, b4, 0)),
        ("rules2d_layer_deeplift_fc1", deeplift_rules2d(x2, b1, 2, "fc1")),
    ]
    checks += [
        ("s3d_argmax_layer_integrated_gradients_mid_fixed",
         layer_ig_segmenter(x3, b3, 1, "mid", 32, "gausslegendre")),
        ("s3d_argmax_layer_feature_ablation_mid_mask_fixed",
         layer_ablation_segmenter(x3, 0, "mid", load("s3d_mid_octants.npy"), -0.2)),
    ]
    results = [compare(name, mine, cases) for name, mine in checks]
    results.append(compare_sampled(
        "c2d_gradient_shap", gradient_shap(clf, x, b4, 1, 2000, 0.1, 7), cases))
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
