"""PyTorch twins of esegeta's task wrappers, which turn a segmentation output into one score
per class (the Rust host implements the identical maths): argmax (each class sums its output
over the voxels assigned to it), threshold (Otsu's split of one foreground channel) and mask
(each class sums over a given region). The fixture scripts explain segmenters through them
with Captum; they also record how close each mask came to a tie (OTSU_STATS, ARGMAX_STATS),
which the scripts print.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

OTSU_STATS = {"calls": 0, "f32_disagreements": 0, "min_var_gap": math.inf}
ARGMAX_STATS = {"calls": 0, "min_gap": math.inf}


def argmax_mask(out):
    """one_hot(argmax over channels), channels moved to dim 1, detached."""
    idx = out.detach().argmax(1)
    note_argmax_gap(out.detach())
    return F.one_hot(idx, out.shape[1]).movedim(-1, 1).to(out.dtype)


def note_argmax_gap(out):
    """Diagnostics: smallest gap between the best and second-best class."""
    top2 = out.topk(2, dim=1).values
    ARGMAX_STATS["calls"] += 1
    ARGMAX_STATS["min_gap"] = min(ARGMAX_STATS["min_gap"],
                                  float((top2[:, 0] - top2[:, 1]).min()))


def spatial_sum(t):
    return t.flatten(2).sum(2)


class ArgmaxScores(nn.Module):
    """scores[b,c] = sum over space of out[b,c] * onehot(argmax)[b,c]."""

    def __init__(self, model, fixed_input=None):
        super().__init__()
        self.model = model
        self.fixed = None
        if fixed_input is not None:
            with torch.no_grad():
                self.fixed = argmax_mask(model(fixed_input))

    def forward(self, x):
        out = self.model(x)
        mask = self.fixed if self.fixed is not None else argmax_mask(out)
        return spatial_sum(out * mask)


def otsu_threshold(v, dtype=torch.float64):
    """scikit-image threshold_otsu(nbins=256) for values already in [0, 1]."""
    hist = torch.histc(v, bins=256, min=0.0, max=1.0).to(dtype)
    c = (torch.arange(256, dtype=dtype) + 0.5) / 256
    w1 = hist.cumsum(0)
    w2 = hist.flip(0).cumsum(0).flip(0)
    m1 = (hist * c).cumsum(0) / w1
    m2 = (hist * c).flip(0).cumsum(0).flip(0) / w2
    var = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    note_otsu_gap(var)
    return float(c[torch.argmax(var)])


def note_otsu_gap(var):
    """Diagnostics: relative gap between the best split value and the next
    smaller value (plateaus of equal values from empty bins are harmless)."""
    best = var.max()
    below = var[var < best]
    gap = float((best - below.max()) / best) if below.numel() else 1.0
    OTSU_STATS["min_var_gap"] = min(OTSU_STATS["min_var_gap"], gap)


def threshold_mask(y):
    """Per-sample Otsu mask of y [B, *spatial] (min-max normalised, detached)."""
    masks = []
    for yb in y.detach():
        y_norm = (yb - yb.min()) / (yb.max() - yb.min())
        t = otsu_threshold(y_norm.flatten())
        OTSU_STATS["calls"] += 1
        OTSU_STATS["f32_disagreements"] += int(
            otsu_threshold(y_norm.flatten(), torch.float32) != t)
        masks.append((y_norm > t).to(y.dtype))
    return torch.stack(masks)


class ThresholdScores(nn.Module):
    """scores[b] = [sum(y * (1 - mask)), sum(y * mask)], y = out[:, 0]."""

    def __init__(self, model, fixed_input=None):
        super().__init__()
        self.model = model
        self.fixed = None
        if fixed_input is not None:
            with torch.no_grad():
                self.fixed = threshold_mask(model(fixed_input)[:, 0])

    def forward(self, x):
        y = self.model(x)[:, 0]
        mask = self.fixed if self.fixed is not None else threshold_mask(y)
        dims = tuple(range(1, y.dim()))
        return torch.stack([(y * (1 - mask)).sum(dims), (y * mask).sum(dims)], 1)


class MaskScores(nn.Module):
    """scores[b,c] = sum over space of out[b,c] * roi."""

    def __init__(self, model, roi):
        super().__init__()
        self.model = model
        self.roi = roi

    def forward(self, x):
        return spatial_sum(self.model(x) * self.roi)
