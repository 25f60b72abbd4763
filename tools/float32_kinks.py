"""Tells float32 noise from a backward error on a ReLU network: for seeded weights of a zoo
architecture, the saliency of several float32 computations of the same group norm against a
float64 gradient, beside the number of ReLU inputs whose sign differs from float64's.

A ReLU network's gradient is piecewise constant in its activation pattern: where one
pre-activation lies within float32 rounding of zero, float32 and float64 (or two float32
kernels) can take opposite sides, and that one unit changes the map by a discrete amount, a
percent of its scale on MONAI's SegResNet. Which kernel flips depends on the seed, not on the
kernel: PyTorch's own eager model is hit as often as the ONNX decomposition esegeta runs
(GroupNorm exported as Reshape + InstanceNormalization + affine). A large error with a flipped
ReLU is this noise; a large error without one would be a bug.

    . tools/env.sh && pip install torch==2.13.0 monai==1.6.1
    python tools/float32_kinks.py [--model "monai SegResNet 3D"] [--seeds 1 4 5]
"""

import argparse
import copy
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_zoo as z  # noqa: E402


class GroupNormAs(nn.Module):
    """A GroupNorm computed another way: libtorch's instance norm on the grouped tensor (as
    esegeta runs the ONNX export), group norm on it, or by hand."""

    def __init__(self, norm, how):
        super().__init__()
        self.norm, self.how = norm, how

    def forward(self, x):
        g, (n, c) = self.norm, x.shape[:2]
        r = x.reshape(n, g.num_groups, -1)
        if self.how == "instance norm":
            r = F.instance_norm(r, eps=g.eps)
        elif self.how == "group norm":
            r = F.group_norm(r, g.num_groups, eps=g.eps)
        else:
            mean = r.mean(-1, keepdim=True)
            r = (r - mean) / torch.sqrt(((r - mean) ** 2).mean(-1, keepdim=True) + g.eps)
        shape = (1, c) + (1,) * (x.dim() - 2)
        return r.reshape(x.shape) * g.weight.reshape(shape) + g.bias.reshape(shape)


def computed_as(model, how):
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.GroupNorm):
                setattr(module, name, GroupNormAs(child, how))
    return model


def saliency(model, x, task):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(z.scores_fn(model, task)(x)[:, 1].sum(), x)
    return g.abs().detach().double().numpy()


def relu_inputs(model, x):
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _, i: seen.append(i[0].detach().double()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def flips(model, model64, x):
    return sum(int(((a > 0) != (b > 0)).sum())
               for a, b in zip(relu_inputs(model, x), relu_inputs(model64, x.double())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="monai SegResNet 3D")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 5])
    args = parser.parse_args()
    _, factory, shape, task = next(e for e in z.ZOO if e[0] == args.model)
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = z.no_zero_weights(factory().eval())
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        model64 = copy.deepcopy(model).double()
        want = saliency(model64, x.double(), task)
        row = []
        for how in ("eager", "instance norm", "group norm", "by hand"):
            m = model if how == "eager" else computed_as(model, how)
            row.append(f"{how}: {z.rel(saliency(m, x, task), want):.1e} "
                       f"({flips(m, model64, x)} ReLU flip(s))")
        print(f"seed {seed}: " + "; ".join(row), flush=True)


if __name__ == "__main__":
    main()
