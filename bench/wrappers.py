"""The host's segmentation task wrappers in PyTorch, so Captum explains the same scores as
esegeta (host/src/task: argmax and threshold, dynamic masks). Same maths as
tools/make_fixtures.py, without its diagnostics."""

import torch
import torch.nn as nn


def channel_argmax(out):
    """torch.argmax over dim 1 (the first on ties, NaN largest), one elementwise pass per
    channel, as host/src/task/argmax.rs computes it: torch's argmax over a short channel axis
    takes about 10 times as long, which would weigh on Captum's times and the limit alike."""
    best = out[:, 0]
    index = torch.zeros_like(best, dtype=torch.int64)
    for c in range(1, out.shape[1]):
        value = out[:, c]
        better = (value > best) | (value.isnan() & ~best.isnan())
        best = torch.where(better, value, best)
        index = index.masked_fill(better, c)
    return index


class ArgmaxScores(nn.Module):
    """scores[b, c] = sum over space of out[b, c] * one_hot(argmax over c)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        classes = torch.arange(out.shape[1]).view(1, -1, *[1] * (out.dim() - 2))
        mask = (channel_argmax(out.detach()).unsqueeze(1) == classes).to(out.dtype)
        return (out * mask).flatten(2).sum(2)


def otsu_threshold(v):
    """scikit-image's threshold_otsu(nbins=256) for values in [0, 1], in float64."""
    hist = torch.histc(v, bins=256, min=0.0, max=1.0).to(torch.float64)
    c = (torch.arange(256, dtype=torch.float64) + 0.5) / 256
    w1, w2 = hist.cumsum(0), hist.flip(0).cumsum(0).flip(0)
    m1 = (hist * c).cumsum(0) / w1
    m2 = (hist * c).flip(0).cumsum(0).flip(0) / w2
    var = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return float(c[torch.argmax(var)])


class ThresholdScores(nn.Module):
    """One foreground channel y: scores = [sum(y * (1 - mask)), sum(y * mask)], mask = Otsu's
    foreground of y min-max normalised per example (no gradient)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(x)[:, 0]
        masks = []
        for yb in y.detach():
            lo, hi = yb.min(), yb.max()
            if hi <= lo:
                masks.append(torch.zeros_like(yb))
                continue
            norm = (yb - lo) / (hi - lo)
            masks.append((norm > otsu_threshold(norm.flatten())).to(y.dtype))
        mask = torch.stack(masks)
        dims = tuple(range(1, y.dim()))
        return torch.stack([(y * (1 - mask)).sum(dims), (y * mask).sum(dims)], 1)


def wrap(model, wrapper):
    if wrapper is None:
        return model
    return {"argmax": ArgmaxScores, "threshold": ThresholdScores}[wrapper](model)
