//! Concat, Split, Slice and Gather.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::{axis, input, ints, optional};
use crate::attrs::Attrs;
use crate::graph_model::{Locality, NodeOp};

pub struct Concat {
    axis: i64,
}

impl Concat {
    pub fn new(a: &Attrs) -> Result<Self> {
        if !a.has("axis") {
            bail!("Concat needs the attribute `axis`");
        }
        Ok(Concat {
            axis: a.int("axis", 0)?,
        })
    }
}

impl NodeOp for Concat {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let parts: Vec<&Tensor> = (0..inputs.len())
            .map(|i| input(inputs, i, "inputs"))
            .collect::<Result<_>>()?;
        let rank = parts.first().map_or(0, |p| p.dim()) as i64;
        Ok(vec![Tensor::f_cat(&parts, axis(self.axis, rank)?)?])
    }

    /// Along channels, each spatial position concatenates its own values.
    fn locality(&self, inputs: &[Option<Tensor>]) -> Result<Locality> {
        let rank = input(inputs, 0, "inputs")?.dim() as i64;
        Ok(if rank > 2 && axis(self.axis, rank)? == 1 {
            Locality::Pointwise
        } else {
            Locality::Global
        })
    }
}

pub struct Split {
    axis: i64,
    split: Option<Vec<i64>>,
    num_outputs: i64,
}

impl Split {
    pub fn new(a: &Attrs, outputs: usize) -> Result<Self> {
        Ok(Split {
            axis: a.int("axis", 0)?,
            split: a.ints("split")?,
            num_outputs: a.int("num_outputs", outputs as i64)?,
        })
    }
}

impl NodeOp for Split {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let ax = axis(self.axis, x.dim() as i64)?;
        let len = x.size()[ax as usize];
        let sizes = match (&self.split, optional(inputs, 1)) {
            (Some(s), _) => s.clone(),
            (None, Some(t)) => ints(t)?,
            (None, None) => {
                // Equal parts, the last one smaller when the length does not divide.
                let n = self.num_outputs.max(1);
                let part = (len + n - 1) / n;
                (0..n).map(|i| part.min(len - i * part).max(0)).collect()
            }
        };
        if sizes.iter().sum::<i64>() != len {
            bail!("split sizes {sizes:?} do not add up to the axis length {len}");
        }
        Ok(x.f_split_with_sizes(&sizes, ax)?)
    }
}

pub struct Slice {
    /// Before opset 10, starts/ends/axes were attributes.
    starts: Option<Vec<i64>>,
    ends: Option<Vec<i64>>,
    axes: Option<Vec<i64>>,
}

impl Slice {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Slice {
            starts: a.ints("starts")?,
            ends: a.ints("ends")?,
            axes: a.ints("axes")?,
        })
    }
}

impl NodeOp for Slice {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let rank = x.dim() as i64;
        let starts = match &self.starts {
            Some(s) => s.clone(),
            None => ints(input(inputs, 1, "starts")?)?,
        };
        let ends = match &self.ends {
            Some(e) => e.clone(),
            None => ints(input(inputs, 2, "ends")?)?,
        };
        let axes = match (&self.axes, optional(inputs, 3)) {
            (Some(a), _) => a.clone(),
            (None, Some(t)) => ints(t)?,
            (None, None) => (0..starts.len() as i64).collect(),
        };
        let steps = match optional(inputs, 4) {
            Some(t) => ints(t)?,
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            bail!("starts, ends, axes and steps of Slice differ in length");
        }
        let mut y = x.shallow_clone();
        for i in 0..starts.len() {
            let ax = axis(axes[i], rank)?;
            y = slice_axis(&y, ax, starts[i], ends[i], steps[i])?;
        }
        Ok(vec![y])
    }
}

/// One axis of ONNX Slice: negative indices count from the end, out-of-range ones clamp, and
/// negative steps walk backwards.
fn slice_axis(x: &Tensor, ax: i64, start: i64, end: i64, step: i64) -> Result<Tensor> {
    let dim = x.size()[ax as usize];
    let resolve = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
    let (start, end) = (resolve(start), resolve(end));
    if step == 0 {
        bail!("Slice's step must not be 0");
    }
    if step > 0 {
        let start = start.clamp(0, dim);
        let end = end.clamp(start, dim);
        return Ok(x.f_slice(ax, start, end, step)?);
    }
    let start = start.clamp(-1, dim - 1);
    let end = end.clamp(-1, dim - 1);
    let indices: Vec<i64> = (0..)
        .map(|k| start + k * step)
        .take_while(|&i| i > end)
        .collect();
    let index = Tensor::from_slice(&indices).f_to_device(x.device())?;
    Ok(x.f_index_select(ax, &index)?)
}

pub struct Gather {
    axis: i64,
}

impl Gather {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Gather {
            axis: a.int("axis", 0)?,
        })
    }
}

impl NodeOp for Gather {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let data = input(inputs, 0, "data")?;
        let indices = input(inputs, 1, "indices")?.f_to_kind(Kind::Int64)?;
        let ax = axis(self.axis, data.dim() as i64)?;
        let dim = data.size()[ax as usize];
        // Negative indices count from the end.
        let wrapped = indices.f_remainder(dim)?.f_to_device(data.device())?;
        let picked = data.f_index_select(ax, &wrapped.f_reshape([-1])?)?;
        let size = data.size();
        let shape: Vec<i64> = size[..ax as usize]
            .iter()
            .chain(indices.size().iter())
            .chain(size[ax as usize + 1..].iter())
            .copied()
            .collect();
        Ok(vec![picked.f_reshape(&shape)?])
    }
}
