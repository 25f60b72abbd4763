//! What incremental evaluation carries from node to node: a value's change from the base
//! pass as boxes (one per example, one size) or whole, and the box geometry and tensor crops
//! that grow, merge and apply those boxes.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::graph_model::SlidingWindow;

/// Per example, the start of its box; one size for all examples, so that a node runs once on
/// the whole batch of boxes.
#[derive(Clone, Debug)]
pub(super) struct Boxes {
    pub(super) starts: Vec<Vec<i64>>,
    pub(super) size: Vec<i64>,
}

/// How a value of the batch differs from the base's. A value that does not differ (one that
/// does not depend on the input) has no delta.
pub(super) enum Delta {
    /// Equal to the base outside `boxes`; inside them, `[B, C, size...]`.
    Boxed(Boxes, Tensor),
    /// Different anywhere: the value itself, `[B, ...]`.
    Whole(Tensor),
}

impl Delta {
    pub(super) fn is_whole(&self) -> bool {
        matches!(self, Delta::Whole(_))
    }

    /// Changed anywhere, and floating point (not a shape or an index).
    pub(super) fn is_whole_values(&self) -> bool {
        matches!(self, Delta::Whole(t) if crate::ops::is_floating(t.kind()))
    }

    pub(super) fn numel(&self) -> usize {
        match self {
            Delta::Boxed(_, t) | Delta::Whole(t) => t.numel(),
        }
    }
}

/// Where each example of `inputs` differs from `base`: the bounding box over the spatial axes.
pub(super) fn input_delta(inputs: &Tensor, base: &Tensor) -> Result<Delta> {
    let space = inputs.size()[2..].to_vec();
    let n = space.len();
    let batch = inputs.size()[0] as usize;
    let differs = inputs.f_ne_tensor(base)?.f_any_dim(1, false)?;
    let mut ranges = vec![vec![(0, 1); n]; batch];
    for d in 0..n {
        let mut along = differs.shallow_clone();
        for other in (0..n).rev().filter(|&e| e != d) {
            along = along.f_any_dim(1 + other as i64, false)?;
        }
        let flags = Vec::<i64>::try_from(
            along
                .f_to_kind(Kind::Int64)?
                .f_to_device(Device::Cpu)?
                .f_reshape([-1])?,
        )?;
        for (e, row) in flags.chunks(space[d] as usize).enumerate() {
            if let (Some(first), Some(last)) = (
                row.iter().position(|&f| f != 0),
                row.iter().rposition(|&f| f != 0),
            ) {
                ranges[e][d] = (first as i64, last as i64 + 1);
            }
        }
    }
    let boxes = uniform(&ranges, &space);
    if boxes.size == space {
        return Ok(Delta::Whole(inputs.shallow_clone()));
    }
    let values = crop_each(inputs, &boxes.starts, &boxes.size)?;
    Ok(Delta::Boxed(boxes, values))
}

/// What `boxes` span at the other side of a strided window: position p stands for `extent`
/// positions from `p * stride - pad_begin`. For a convolution or pool, the input windows of
/// output boxes; for a transposed convolution, the outputs input boxes reach.
pub(super) fn strided_span(boxes: &Boxes, w: &SlidingWindow) -> Boxes {
    let n = boxes.size.len();
    Boxes {
        starts: (boxes.starts.iter())
            .map(|s| {
                (0..n)
                    .map(|d| s[d] * w.stride[d] - w.pad_begin[d])
                    .collect()
            })
            .collect(),
        size: (0..n)
            .map(|d| (boxes.size[d] - 1) * w.stride[d] + w.extent[d])
            .collect(),
    }
}

/// Per example and axis, the range that covers every box.
pub(super) fn union(boxes: &[&Boxes]) -> Vec<Vec<(i64, i64)>> {
    let Some(first) = boxes.first() else {
        return Vec::new();
    };
    (0..first.starts.len())
        .map(|e| {
            (0..first.size.len())
                .map(|d| {
                    let lo = boxes.iter().map(|b| b.starts[e][d]).min().unwrap_or(0);
                    let hi = boxes
                        .iter()
                        .map(|b| b.starts[e][d] + b.size[d])
                        .max()
                        .unwrap_or(1);
                    (lo, hi)
                })
                .collect()
        })
        .collect()
}

/// Boxes of one size that contain each example's range, inside `extent`. Growing a box only
/// recomputes more, so the values stay exact.
pub(super) fn uniform(ranges: &[Vec<(i64, i64)>], extent: &[i64]) -> Boxes {
    let size: Vec<i64> = (0..extent.len())
        .map(|d| {
            let widest = ranges.iter().map(|r| r[d].1 - r[d].0).max().unwrap_or(1);
            widest.clamp(1, extent[d])
        })
        .collect();
    let starts = ranges
        .iter()
        .map(|r| {
            (0..extent.len())
                .map(|d| r[d].0.min(extent[d] - size[d]).max(0))
                .collect()
        })
        .collect();
    Boxes { starts, size }
}

pub(super) fn ceil_div(a: i64, b: i64) -> i64 {
    -(-a).div_euclid(b)
}

/// The box at `start` of size `size` of one example `[C, ...]`.
pub(super) fn crop(t: &Tensor, start: &[i64], size: &[i64]) -> Result<Tensor> {
    let mut t = t.shallow_clone();
    for (d, (&s, &n)) in start.iter().zip(size).enumerate() {
        t = t.f_narrow(1 + d as i64, s, n)?;
    }
    Ok(t)
}

/// Per example, its box of `t` (`[B or 1, C, ...]`), stacked: `[B, C, size...]`.
pub(super) fn crop_each(t: &Tensor, starts: &[Vec<i64>], size: &[i64]) -> Result<Tensor> {
    let shared = t.size()[0] == 1;
    let parts = starts
        .iter()
        .enumerate()
        .map(|(e, start)| crop(&t.get(if shared { 0 } else { e as i64 }), start, size))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::f_stack(&parts, 0)?)
}

/// Per example, its window of `base` (`[1, C, ...]`), padded with `pad_value` where the window
/// lies outside: `[B, C, size...]`.
pub(super) fn padded_windows(base: &Tensor, windows: &Boxes, pad_value: f64) -> Result<Tensor> {
    let one = base.get(0);
    let extent = &base.size()[2..];
    let parts = windows
        .starts
        .iter()
        .map(|start| {
            let (mut at, mut len, mut pad) = (Vec::new(), Vec::new(), Vec::new());
            for (d, &n) in extent.iter().enumerate() {
                let (lo, hi) = (start[d], start[d] + windows.size[d]);
                let (inside_lo, inside_hi) = (lo.clamp(0, n), hi.clamp(0, n));
                at.push(inside_lo);
                len.push((inside_hi - inside_lo).max(0));
                pad.push((inside_lo - lo, hi - inside_hi.max(inside_lo)));
            }
            let inside = crop(&one, &at, &len)?;
            if pad.iter().all(|&(a, b)| a == 0 && b == 0) {
                return Ok(inside);
            }
            let torch_pad: Vec<i64> = pad.iter().rev().flat_map(|&(a, b)| [a, b]).collect();
            Ok(inside.f_pad(torch_pad.as_slice(), "constant", pad_value)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::f_stack(&parts, 0)?)
}

/// Writes each example's changed box (`values`, at `changed` + `offset`) into its window of
/// `x` (at `windows`), where the two meet.
pub(super) fn overlay(
    x: &Tensor,
    windows: &Boxes,
    changed: &Boxes,
    values: &Tensor,
    offset: &[i64],
) -> Result<()> {
    for (e, (w, c)) in windows.starts.iter().zip(&changed.starts).enumerate() {
        let (mut at, mut from, mut len) = (Vec::new(), Vec::new(), Vec::new());
        for d in 0..w.len() {
            let a = c[d] + offset[d];
            let lo = a.max(w[d]);
            let hi = (a + changed.size[d]).min(w[d] + windows.size[d]);
            if hi <= lo {
                break;
            }
            at.push(lo - w[d]);
            from.push(lo - a);
            len.push(hi - lo);
        }
        if len.len() == w.len() {
            let e = e as i64;
            crop(&x.get(e), &at, &len)?.f_copy_(&crop(&values.get(e), &from, &len)?)?;
        }
    }
    Ok(())
}

/// The value of every example in full: the base with each example's box written in.
pub(super) fn materialise(delta: &Delta, base: &Tensor, batch: i64) -> Result<Tensor> {
    match delta {
        Delta::Whole(t) => Ok(t.shallow_clone()),
        Delta::Boxed(boxes, values) => {
            // A copy even for one example: the recorded base must stay as it is.
            let mut repeats = vec![1; base.dim()];
            repeats[0] = batch;
            let x = base.f_repeat(repeats.as_slice())?;
            let whole = Boxes {
                starts: vec![vec![0; boxes.size.len()]; batch as usize],
                size: base.size()[2..].to_vec(),
            };
            overlay(&x, &whole, boxes, values, &vec![0; boxes.size.len()])?;
            Ok(x)
        }
    }
}

/// Whether a tensor of `size` broadcasts over the spatial axes of a rank-`rank` value: every
/// axis it aligns with there (numpy aligns trailing axes) has size 1.
pub(super) fn broadcasts_over_space(size: &[i64], rank: usize) -> bool {
    size.iter().rev().take(rank - 2).all(|&n| n == 1)
}
