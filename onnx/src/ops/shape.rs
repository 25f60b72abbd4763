//! Ops that move data without arithmetic: Reshape (allowzero), Flatten, Transpose, Squeeze,
//! Unsqueeze, Expand, Tile and Pad (constant, reflect, edge, wrap).

use anyhow::{bail, Result};
use tch::Tensor;

use super::conv::torch_pad;
use super::{axes_from, axis, input, ints, optional};
use crate::attrs::Attrs;
use crate::graph_model::NodeOp;

pub struct Reshape {
    allowzero: bool,
}

impl Reshape {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Reshape {
            allowzero: a.int("allowzero", 0)? != 0,
        })
    }
}

impl NodeOp for Reshape {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let size = x.size();
        let mut shape = ints(input(inputs, 1, "shape")?)?;
        if !self.allowzero {
            // A 0 copies the input's dimension at that position.
            for (i, d) in shape.iter_mut().enumerate() {
                if *d == 0 {
                    *d = *size.get(i).unwrap_or(&0);
                }
            }
        }
        Ok(vec![x.f_reshape(&shape)?])
    }
}

pub struct Flatten {
    axis: i64,
}

impl Flatten {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Flatten {
            axis: a.int("axis", 1)?,
        })
    }
}

impl NodeOp for Flatten {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let size = x.size();
        let rank = size.len() as i64;
        let ax = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        };
        if ax < 0 || ax > rank {
            bail!(
                "Flatten's axis {} is out of range for rank {rank}",
                self.axis
            );
        }
        let outer: i64 = size[..ax as usize].iter().product();
        let inner: i64 = size[ax as usize..].iter().product();
        Ok(vec![x.f_reshape([outer, inner])?])
    }
}

pub struct Transpose {
    perm: Option<Vec<i64>>,
}

impl Transpose {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Transpose {
            perm: a.ints("perm")?,
        })
    }
}

impl NodeOp for Transpose {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let rank = x.dim() as i64;
        let perm = self
            .perm
            .clone()
            .unwrap_or_else(|| (0..rank).rev().collect());
        Ok(vec![x.f_permute(&perm)?])
    }
}

pub struct Squeeze {
    axes: Option<Vec<i64>>,
}

impl Squeeze {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Squeeze {
            axes: a.ints("axes")?,
        })
    }
}

impl NodeOp for Squeeze {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let size = x.size();
        let rank = size.len() as i64;
        let axes = match axes_from(&self.axes, inputs, 1)? {
            Some(axes) => axes
                .iter()
                .map(|&a| axis(a, rank))
                .collect::<Result<Vec<_>>>()?,
            None => (0..rank).filter(|&a| size[a as usize] == 1).collect(),
        };
        let shape: Vec<i64> = (0..rank)
            .filter(|a| !axes.contains(a))
            .map(|a| size[a as usize])
            .collect();
        if let Some(a) = axes.iter().find(|&&a| size[a as usize] != 1) {
            bail!(
                "Squeeze of axis {a}, whose size is {} and not 1",
                size[*a as usize]
            );
        }
        Ok(vec![x.f_reshape(&shape)?])
    }
}

pub struct Unsqueeze {
    axes: Option<Vec<i64>>,
}

impl Unsqueeze {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Unsqueeze {
            axes: a.ints("axes")?,
        })
    }
}

impl NodeOp for Unsqueeze {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let Some(axes) = axes_from(&self.axes, inputs, 1)? else {
            bail!("Unsqueeze needs axes");
        };
        let rank = x.dim() as i64 + axes.len() as i64;
        let mut axes = axes
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<Vec<_>>>()?;
        axes.sort_unstable();
        let mut y = x.shallow_clone();
        for a in axes {
            y = y.f_unsqueeze(a)?;
        }
        Ok(vec![y])
    }
}

/// Broadcasts to the numpy broadcast of the input's shape and the given one.
pub struct Expand;

impl NodeOp for Expand {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let shape = ints(input(inputs, 1, "shape")?)?;
        let size = x.size();
        let rank = size.len().max(shape.len());
        let at = |s: &[i64], i: usize| {
            let offset = rank - s.len();
            if i < offset {
                1
            } else {
                s[i - offset]
            }
        };
        let mut out = Vec::with_capacity(rank);
        for i in 0..rank {
            let (a, b) = (at(&size, i), at(&shape, i));
            if a != b && a != 1 && b != 1 {
                bail!("Expand cannot broadcast shape {size:?} to {shape:?}");
            }
            out.push(if a == 1 { b } else { a });
        }
        Ok(vec![x.f_expand(&out, false)?])
    }
}

pub struct Tile;

impl NodeOp for Tile {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let repeats = ints(input(inputs, 1, "repeats")?)?;
        if repeats.len() != x.dim() {
            bail!(
                "Tile's repeats {repeats:?} do not match the input's rank {}",
                x.dim()
            );
        }
        Ok(vec![x.f_repeat(&repeats)?])
    }
}

pub struct Pad {
    mode: String,
    /// Before opset 11, pads and value were attributes.
    pads: Option<Vec<i64>>,
    value: f64,
}

impl Pad {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Pad {
            mode: a.choice("mode", "constant", &["constant", "reflect", "edge", "wrap"])?,
            pads: a.ints("pads")?,
            value: a.float("value", 0.0)? as f64,
        })
    }
}

impl NodeOp for Pad {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let rank = x.dim() as i64;
        let pads = match &self.pads {
            Some(p) => p.clone(),
            None => ints(input(inputs, 1, "pads")?)?,
        };
        let value = match optional(inputs, 2) {
            Some(v) if v.numel() > 0 => v
                .f_to_kind(tch::Kind::Double)?
                .f_reshape([-1])?
                .f_double_value(&[0])?,
            _ => self.value,
        };
        let axes = match optional(inputs, 3) {
            Some(t) => ints(t)?
                .iter()
                .map(|&a| axis(a, rank))
                .collect::<Result<Vec<_>>>()?,
            None => (0..rank).collect(),
        };
        let n = axes.len();
        if pads.len() != 2 * n {
            bail!("Pad's pads {pads:?} should hold a begin and an end for each of {n} axes");
        }
        let mut begins = vec![0; rank as usize];
        let mut ends = vec![0; rank as usize];
        for (i, &a) in axes.iter().enumerate() {
            begins[a as usize] = pads[i];
            ends[a as usize] = pads[n + i];
        }
        if self.mode == "constant" {
            return Ok(vec![x.f_pad(
                torch_pad(&begins, &ends),
                "constant",
                value,
            )?]);
        }
        // torch pads the trailing axes only: trim the untouched leading ones from the list.
        let first = begins
            .iter()
            .zip(&ends)
            .position(|(&b, &e)| b != 0 || e != 0)
            .unwrap_or(rank as usize);
        let mode = match self.mode.as_str() {
            "edge" => "replicate",
            "wrap" => "circular",
            other => other,
        };
        let pad = torch_pad(&begins[first..], &ends[first..]);
        if pad.is_empty() {
            return Ok(vec![x.shallow_clone()]);
        }
        Ok(vec![x.f_pad(pad, mode, None)?])
    }
}
