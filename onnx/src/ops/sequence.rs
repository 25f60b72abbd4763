//! SplitToSequence and SequenceAt: the pair PyTorch's exporter writes, unoptimised, for
//! `torch.chunk` and `torch.split` (ShuffleNet's channel split).
//!
//! The executor's values are tensors, so a sequence of equal parts is kept as one tensor with
//! the parts along a new first axis (a view of the input, no copy): SequenceAt selects one.
//! Parts of different lengths cannot be kept so and are refused.

use anyhow::{bail, Result};
use tch::Tensor;

use super::{axis, input, ints, optional};
use crate::attrs::Attrs;
use crate::graph_model::NodeOp;

pub struct SplitToSequence {
    axis: i64,
    keepdims: bool,
}

impl SplitToSequence {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(SplitToSequence {
            axis: a.int("axis", 0)?,
            keepdims: a.int("keepdims", 1)? != 0,
        })
    }
}

impl NodeOp for SplitToSequence {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let ax = axis(self.axis, x.dim() as i64)?;
        let len = x.size()[ax as usize];
        // No split: parts of length 1, the axis dropped unless keepdims.
        let (part, squeeze) = match optional(inputs, 1) {
            None => (1, !self.keepdims),
            Some(t) => {
                let split = ints(t)?;
                match (t.dim(), split.as_slice()) {
                    (0, [p]) => (*p, false),
                    (_, [first, ..]) if split.iter().all(|p| p == first) => (*first, false),
                    _ => bail!(
                        "SplitToSequence into parts of different lengths {split:?} is not \
                         supported (esegeta keeps a sequence as one tensor of equal parts)"
                    ),
                }
            }
        };
        if part < 1 || len % part != 0 {
            bail!(
                "SplitToSequence into parts of {part} along an axis of length {len} leaves a \
                 shorter last part, which esegeta does not support (it keeps a sequence as one \
                 tensor of equal parts)"
            );
        }
        let mut shape = x.size();
        shape[ax as usize] = part;
        shape.insert(ax as usize, len / part);
        let mut parts = x.f_reshape(&shape)?.f_movedim(&[ax], &[0])?;
        if squeeze {
            parts = parts.f_squeeze_dim(ax + 1)?;
        }
        Ok(vec![parts])
    }
}

pub struct SequenceAt;

impl NodeOp for SequenceAt {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let parts = input(inputs, 0, "input_sequence")?;
        let given = ints(input(inputs, 1, "position")?)?;
        let [position] = given.as_slice() else {
            bail!(
                "SequenceAt's position must hold one integer, got {} values",
                given.len()
            );
        };
        let count = parts.size().first().copied().unwrap_or(0);
        let at = if *position < 0 {
            position + count
        } else {
            *position
        };
        if at < 0 || at >= count {
            bail!("SequenceAt's position {position} is outside a sequence of {count} parts");
        }
        Ok(vec![parts.f_select(0, at)?])
    }
}
