//! Elementwise ops with ONNX (numpy) broadcasting: arithmetic, comparison, logic, math
//! functions, the variadic Max/Min/Sum/Mean, Clip and Where.

use anyhow::Result;
use tch::Tensor;

use super::{input, is_floating, optional, BuildCtx};
use crate::attrs::Attrs;
use crate::graph_model::{Locality, NodeOp};

type Unary = fn(&Tensor) -> Result<Tensor, tch::TchError>;
type Binary = fn(&Tensor, &Tensor) -> Result<Tensor>;

struct Map(Unary);

impl NodeOp for Map {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![(self.0)(input(inputs, 0, "X")?)?])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}

struct Zip(Binary);

impl NodeOp for Zip {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "A")?;
        let b = input(inputs, 1, "B")?;
        Ok(vec![(self.0)(a, b)?])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}

/// Max, Min, Sum, Mean over any number of inputs.
struct Fold {
    f: Binary,
    mean: bool,
}

impl NodeOp for Fold {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let mut acc = input(inputs, 0, "data_0")?.shallow_clone();
        for i in 1..inputs.len() {
            acc = (self.f)(&acc, input(inputs, i, "data")?)?;
        }
        if self.mean {
            acc = acc / inputs.len() as f64;
        }
        Ok(vec![acc])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}

pub fn build(op: &str, a: &Attrs, _ctx: &BuildCtx) -> Result<Option<Box<dyn NodeOp>>> {
    let unary = |f: Unary| Ok(Some(Box::new(Map(f)) as Box<dyn NodeOp>));
    let binary = |f: Binary| Ok(Some(Box::new(Zip(f)) as Box<dyn NodeOp>));
    let fold = |f: Binary, mean| Ok(Some(Box::new(Fold { f, mean }) as Box<dyn NodeOp>));
    match op {
        "Neg" => unary(Tensor::f_neg),
        "Abs" => unary(Tensor::f_abs),
        "Sqrt" => unary(Tensor::f_sqrt),
        "Exp" => unary(Tensor::f_exp),
        "Log" => unary(Tensor::f_log),
        "Reciprocal" => unary(Tensor::f_reciprocal),
        "Erf" => unary(Tensor::f_erf),
        "Floor" => unary(Tensor::f_floor),
        "Ceil" => unary(Tensor::f_ceil),
        "Round" => unary(Tensor::f_round),
        "Sign" => unary(Tensor::f_sign),
        "Sin" => unary(Tensor::f_sin),
        "Cos" => unary(Tensor::f_cos),
        "Not" => unary(Tensor::f_logical_not),
        "IsNaN" => unary(Tensor::f_isnan),
        "IsInf" => unary(Tensor::f_isinf),
        "Add" => binary(|a, b| Ok(a.f_add(b)?)),
        "Sub" => binary(|a, b| Ok(a.f_sub(b)?)),
        "Mul" => binary(|a, b| Ok(a.f_mul(b)?)),
        "Div" => binary(div),
        "Pow" => binary(|a, b| Ok(a.f_pow(b)?)),
        "Mod" => {
            // fmod=1 takes the dividend's sign (C fmod); fmod=0 the divisor's (Python %).
            if a.int("fmod", 0)? == 1 {
                binary(|a, b| Ok(a.f_fmod_tensor(b)?))
            } else {
                binary(|a, b| Ok(a.f_remainder_tensor(b)?))
            }
        }
        "Equal" => binary(|a, b| Ok(a.f_eq_tensor(b)?)),
        "Less" => binary(|a, b| Ok(a.f_lt_tensor(b)?)),
        "Greater" => binary(|a, b| Ok(a.f_gt_tensor(b)?)),
        "LessOrEqual" => binary(|a, b| Ok(a.f_le_tensor(b)?)),
        "GreaterOrEqual" => binary(|a, b| Ok(a.f_ge_tensor(b)?)),
        "And" => binary(|a, b| Ok(a.f_logical_and(b)?)),
        "Or" => binary(|a, b| Ok(a.f_logical_or(b)?)),
        "Xor" => binary(|a, b| Ok(a.f_logical_xor(b)?)),
        "Max" => fold(|a, b| Ok(a.f_maximum(b)?), false),
        "Min" => fold(|a, b| Ok(a.f_minimum(b)?), false),
        "Sum" => fold(|a, b| Ok(a.f_add(b)?), false),
        "Mean" => fold(|a, b| Ok(a.f_add(b)?), true),
        "Where" => Ok(Some(Box::new(Where))),
        "Clip" => Ok(Some(Box::new(Clip::new(a)?))),
        _ => Ok(None),
    }
}

/// ONNX divides integers with truncation; floats as usual.
fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if is_floating(a.kind()) || is_floating(b.kind()) {
        Ok(a.f_div(b)?)
    } else {
        Ok(a.f_div_tensor_mode(b, "trunc")?)
    }
}

struct Where;

impl NodeOp for Where {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let condition = input(inputs, 0, "condition")?.f_to_kind(tch::Kind::Bool)?;
        let x = input(inputs, 1, "X")?;
        let y = input(inputs, 2, "Y")?;
        Ok(vec![x.f_where_self(&condition, y)?])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}

/// Clamps to [min, max]: bounds as attributes before opset 11, optional inputs after.
struct Clip {
    min: Option<f64>,
    max: Option<f64>,
}

impl Clip {
    fn new(a: &Attrs) -> Result<Self> {
        let bound = |name| -> Result<Option<f64>> {
            Ok(if a.has(name) {
                Some(a.float(name, 0.0)? as f64)
            } else {
                None
            })
        };
        Ok(Clip {
            min: bound("min")?,
            max: bound("max")?,
        })
    }
}

impl NodeOp for Clip {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let bound = |i: usize, attr: Option<f64>| -> Result<Option<Tensor>> {
            match (optional(inputs, i), attr) {
                (Some(t), _) => Ok(Some(t.f_to_kind(x.kind())?)),
                (None, Some(v)) => Ok(Some(Tensor::f_scalar_tensor(v, (x.kind(), x.device()))?)),
                (None, None) => Ok(None),
            }
        };
        let (min, max) = (bound(1, self.min)?, bound(2, self.max)?);
        if min.is_none() && max.is_none() {
            return Ok(vec![x.shallow_clone()]);
        }
        // min > max gives max everywhere, in ONNX as in torch.clamp.
        Ok(vec![x.f_clamp_tensor(min.as_ref(), max.as_ref())?])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}
