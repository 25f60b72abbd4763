//! Activations: Relu, LeakyRelu, Elu, Celu, Selu, PRelu, Sigmoid, HardSigmoid, HardSwish, Tanh,
//! Softplus, Softsign, Gelu, Mish, ThresholdedRelu, Softmax, LogSoftmax.

use anyhow::{bail, Result};
use tch::Tensor;

use super::{axis, input, BuildCtx};
use crate::attrs::Attrs;
use crate::graph_model::{Locality, NodeOp};

/// An activation of one input computed by a closure over its parameters.
struct Activation {
    f: Box<dyn Fn(&Tensor) -> Result<Tensor>>,
}

impl NodeOp for Activation {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![(self.f)(input(inputs, 0, "X")?)?])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}

fn boxed(f: impl Fn(&Tensor) -> Result<Tensor> + 'static) -> Option<Box<dyn NodeOp>> {
    Some(Box::new(Activation { f: Box::new(f) }))
}

pub fn build(op: &str, a: &Attrs, ctx: &BuildCtx) -> Result<Option<Box<dyn NodeOp>>> {
    Ok(match op {
        "Relu" => boxed(|x| Ok(x.f_relu()?)),
        "Sigmoid" => boxed(|x| Ok(x.f_sigmoid()?)),
        "Tanh" => boxed(|x| Ok(x.f_tanh()?)),
        "Softsign" => boxed(|x| Ok(x.f_div(&(x.f_abs()? + 1.0))?)),
        "HardSwish" => boxed(|x| Ok(x.f_hardswish()?)),
        // torch's softplus (beta 1, threshold 20) equals log(1 + exp(x)) to float precision.
        "Softplus" => boxed(|x| Ok(x.f_softplus()?)),
        "LeakyRelu" => {
            let alpha = a.float("alpha", 0.01)? as f64;
            // PyTorch's rule: slope 1 where x > 0, alpha elsewhere (also for the gradient).
            boxed(move |x| Ok(x.f_where_self(&x.f_gt(0.0)?, &(x * alpha))?))
        }
        "Elu" => {
            let alpha = a.float("alpha", 1.0)? as f64;
            boxed(move |x| elu(x, alpha, 1.0))
        }
        "Celu" => {
            let alpha = a.float("alpha", 1.0)? as f64;
            boxed(move |x| {
                let negative = (x.f_clamp_max(0.0)? / alpha).f_expm1()? * alpha;
                Ok(x.f_clamp_min(0.0)? + negative)
            })
        }
        "Selu" => {
            let alpha = a.float("alpha", 1.673_263_2)? as f64;
            let gamma = a.float("gamma", 1.050_701)? as f64;
            boxed(move |x| elu(x, alpha, gamma))
        }
        "HardSigmoid" => {
            let alpha = a.float("alpha", 0.2)? as f64;
            let beta = a.float("beta", 0.5)? as f64;
            boxed(move |x| Ok((x * alpha + beta).f_clamp(0.0, 1.0)?))
        }
        "PRelu" => Some(Box::new(PRelu)),
        // PyTorch's own kernel: x * tanh(softplus(x)) with its thresholded softplus.
        "Mish" => boxed(|x| Ok(x.f_mish()?)),
        "ThresholdedRelu" => {
            let alpha = a.float("alpha", 1.0)? as f64;
            boxed(move |x| Ok(x.f_where_self(&x.f_gt(alpha)?, &x.f_zeros_like()?)?))
        }
        "Gelu" => {
            let approximate = a.choice("approximate", "none", &["none", "tanh"])?;
            boxed(move |x| Ok(x.f_gelu(&approximate)?))
        }
        "Softmax" | "LogSoftmax" => Some(Box::new(Softmax::new(a, ctx.opset, op == "LogSoftmax")?)),
        _ => None,
    })
}

/// gamma * (x if x > 0 else alpha * (exp(x) - 1)); exp only sees x <= 0, so the unused branch
/// never overflows into the gradient.
fn elu(x: &Tensor, alpha: f64, gamma: f64) -> Result<Tensor> {
    let negative = x.f_clamp_max(0.0)?.f_expm1()? * alpha;
    Ok(x.f_where_self(&x.f_gt(0.0)?, &negative)? * gamma)
}

/// x where x > 0, slope * x elsewhere; the slope broadcasts (per channel: [C, 1, 1]).
struct PRelu;

impl NodeOp for PRelu {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let slope = input(inputs, 1, "slope")?;
        Ok(vec![x.f_where_self(&x.f_gt(0.0)?, &x.f_mul(slope)?)?])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Pointwise)
    }
}

struct Softmax {
    axis: i64,
    /// Before opset 13 the input was flattened to 2D at `axis` and normalised over the rest.
    flatten: bool,
    log: bool,
}

impl Softmax {
    fn new(a: &Attrs, opset: i64, log: bool) -> Result<Self> {
        let flatten = opset < 13;
        Ok(Softmax {
            axis: a.int("axis", if flatten { 1 } else { -1 })?,
            flatten,
            log,
        })
    }
}

impl NodeOp for Softmax {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let rank = x.dim() as i64;
        let ax = axis(self.axis, rank)?;
        let apply = |t: &Tensor, dim: i64| -> Result<Tensor> {
            Ok(if self.log {
                t.f_log_softmax(dim, None)?
            } else {
                t.f_softmax(dim, None)?
            })
        };
        if !self.flatten || ax == rank - 1 {
            return Ok(vec![apply(x, ax)?]);
        }
        if rank == 0 {
            bail!("softmax of a scalar");
        }
        let shape = x.size();
        let outer: i64 = shape[..ax as usize].iter().product();
        let flat = x.f_reshape([outer, -1])?;
        Ok(vec![apply(&flat, 1)?.f_reshape(&shape)?])
    }

    /// Along channels (opset 13 on) each spatial position is normalised on its own.
    fn locality(&self, inputs: &[Option<Tensor>]) -> Result<Locality> {
        let rank = input(inputs, 0, "input")?.dim() as i64;
        Ok(
            if !self.flatten && rank > 2 && axis(self.axis, rank)? == 1 {
                Locality::Pointwise
            } else {
                Locality::Global
            },
        )
    }
}
