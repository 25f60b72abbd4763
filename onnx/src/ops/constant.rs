//! Values that do not depend on the data: Constant, ConstantOfShape, Range, Shape and Size;
//! plus the type and identity ops Cast, CastLike, Identity and Dropout (inference).

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::{input, ints, is_floating, BuildCtx};
use crate::attrs::Attrs;
use crate::graph_model::{Locality, NodeOp};
use crate::tensor::kind_of;

/// A floating tensor in the model's precision; others keep their type.
fn to_model(t: Tensor, ctx: &BuildCtx) -> Result<Tensor> {
    let t = if is_floating(t.kind()) && t.kind() != ctx.float_kind {
        t.f_to_kind(ctx.float_kind)?
    } else {
        t
    };
    Ok(t.f_to_device(ctx.device)?)
}

pub struct Constant {
    value: Tensor,
}

impl Constant {
    pub fn new(a: &Attrs, ctx: &BuildCtx) -> Result<Self> {
        let value = if let Some(t) = a.tensor("value")? {
            ctx.reader.read(t)?
        } else if a.has("value_float") {
            Tensor::from(a.float("value_float", 0.0)?)
        } else if let Some(v) = a.floats("value_floats")? {
            Tensor::from_slice(&v)
        } else if a.has("value_int") {
            Tensor::from(a.int("value_int", 0)?)
        } else if let Some(v) = a.ints("value_ints")? {
            Tensor::from_slice(&v)
        } else {
            bail!("Constant holds no value esegeta can read (sparse and string constants are not supported)");
        };
        Ok(Constant {
            value: to_model(value, ctx)?,
        })
    }
}

impl NodeOp for Constant {
    fn run(&self, _inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![self.value.shallow_clone()])
    }
}

pub struct ConstantOfShape {
    value: Tensor,
}

impl ConstantOfShape {
    pub fn new(a: &Attrs, ctx: &BuildCtx) -> Result<Self> {
        let value = match a.tensor("value")? {
            Some(t) => ctx.reader.read(t)?.f_reshape([-1])?,
            None => Tensor::from_slice(&[0f32]),
        };
        if value.numel() != 1 {
            bail!("ConstantOfShape's value must hold one element");
        }
        Ok(ConstantOfShape {
            value: to_model(value, ctx)?,
        })
    }
}

impl NodeOp for ConstantOfShape {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let shape = ints(input(inputs, 0, "input")?)?;
        let value = self.value.f_reshape([0i64; 0])?;
        Ok(vec![value.f_expand(&shape, false)?.f_contiguous()?])
    }
}

/// start, start + delta, ... below limit (above it for a negative delta).
pub struct Range;

impl NodeOp for Range {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let start = input(inputs, 0, "start")?;
        let limit = input(inputs, 1, "limit")?;
        let delta = input(inputs, 2, "delta")?;
        let options = (start.kind(), start.device());
        let scalar = |t: &Tensor| {
            t.f_to_kind(Kind::Double)?
                .f_reshape([-1])?
                .f_double_value(&[0])
        };
        if is_floating(start.kind()) {
            let (s, l, d) = (scalar(start)?, scalar(limit)?, scalar(delta)?);
            return Ok(vec![Tensor::f_arange_start_step(s, l, d, options)?]);
        }
        let (s, l, d) = (ints(start)?, ints(limit)?, ints(delta)?);
        match (s.first(), l.first(), d.first()) {
            (Some(&s), Some(&l), Some(&d)) if d != 0 => {
                Ok(vec![Tensor::f_arange_start_step(s, l, d, options)?])
            }
            _ => bail!("Range needs scalar start, limit and a non-zero delta"),
        }
    }
}

pub struct ShapeOf {
    start: i64,
    end: Option<i64>,
}

impl ShapeOf {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(ShapeOf {
            start: a.int("start", 0)?,
            end: if a.has("end") {
                Some(a.int("end", 0)?)
            } else {
                None
            },
        })
    }
}

impl NodeOp for ShapeOf {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let size = x.size();
        let rank = size.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let start = clamp(self.start);
        let end = clamp(self.end.unwrap_or(rank)).max(start);
        Ok(vec![
            Tensor::from_slice(&size[start..end]).f_to_device(x.device())?
        ])
    }
}

pub struct SizeOf;

impl NodeOp for SizeOf {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        Ok(vec![Tensor::from(x.numel() as i64).f_to_device(x.device())?])
    }
}

pub struct Cast {
    to: Kind,
}

impl Cast {
    pub fn new(a: &Attrs, ctx: &BuildCtx) -> Result<Self> {
        if !a.has("to") {
            bail!("Cast needs the attribute `to`");
        }
        let to = kind_of(a.int("to", 0)? as i32)?;
        // A model loaded in reduced precision stays in it where the graph casts to float.
        let to = if is_floating(to) && ctx.float_kind != Kind::Float {
            ctx.float_kind
        } else {
            to
        };
        Ok(Cast { to })
    }
}

impl NodeOp for Cast {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![input(inputs, 0, "input")?.f_to_kind(self.to)?])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}

pub struct CastLike;

impl NodeOp for CastLike {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let like = input(inputs, 1, "target_type")?;
        Ok(vec![input(inputs, 0, "input")?.f_to_kind(like.kind())?])
    }

    fn reads_values(&self, i: usize) -> bool {
        i == 0
    }
}

pub struct Identity;

impl NodeOp for Identity {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![input(inputs, 0, "input")?.shallow_clone()])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}

/// Inference: the input unchanged, and an all-true mask when asked for.
pub struct Dropout {
    pub outputs: usize,
}

impl NodeOp for Dropout {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let mut out = vec![x.shallow_clone()];
        if self.outputs > 1 {
            out.push(x.f_ones_like()?.f_to_kind(Kind::Bool)?);
        }
        Ok(out)
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(if self.outputs == 1 {
            Locality::Pointwise
        } else {
            Locality::Global
        })
    }
}
