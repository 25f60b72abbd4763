//! Gemm (fully connected layers), MatMul and Einsum.

use anyhow::{bail, Result};
use tch::Tensor;

use super::{input, optional};
use crate::attrs::Attrs;
use crate::graph_model::NodeOp;

/// Y = alpha * A' B' + beta * C, with A' and B' optionally transposed.
pub struct Gemm {
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
}

impl Gemm {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Gemm {
            alpha: a.float("alpha", 1.0)? as f64,
            beta: a.float("beta", 1.0)? as f64,
            trans_a: a.int("transA", 0)? != 0,
            trans_b: a.int("transB", 0)? != 0,
        })
    }
}

impl NodeOp for Gemm {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "A")?;
        let b = input(inputs, 1, "B")?;
        let c = optional(inputs, 2);
        // nn.Linear's export: the same call torch makes, for the same rounding.
        if self.trans_b && !self.trans_a && self.alpha == 1.0 && self.beta == 1.0 {
            return Ok(vec![a.f_linear(b, c)?]);
        }
        let a = if self.trans_a {
            a.f_transpose(0, 1)?
        } else {
            a.shallow_clone()
        };
        let b = if self.trans_b {
            b.f_transpose(0, 1)?
        } else {
            b.shallow_clone()
        };
        let mut y = a.f_matmul(&b)?;
        if self.alpha != 1.0 {
            y = y * self.alpha;
        }
        if let Some(c) = c {
            y = y.f_add(&(c * self.beta))?;
        }
        Ok(vec![y])
    }
}

pub struct MatMul;

impl NodeOp for MatMul {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        Ok(vec![
            input(inputs, 0, "A")?.f_matmul(input(inputs, 1, "B")?)?
        ])
    }
}

/// A sum of products over the axes an equation names (`"bhqd,bhkd->bhqk"`), by libtorch's
/// einsum, whose equation language (numpy's, with `...` and the implicit output) is ONNX's.
pub struct Einsum {
    equation: String,
}

impl Einsum {
    pub fn new(a: &Attrs) -> Result<Self> {
        if !a.has("equation") {
            bail!("Einsum needs the attribute `equation`");
        }
        // ONNX allows spaces around the terms; libtorch does not.
        let equation: String = a
            .string("equation", "")?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if equation.is_empty() {
            bail!("Einsum's equation is empty");
        }
        Ok(Einsum { equation })
    }
}

impl NodeOp for Einsum {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let operands: Vec<&Tensor> = (0..inputs.len())
            .map(|i| input(inputs, i, "Inputs"))
            .collect::<Result<_>>()?;
        let terms = self
            .equation
            .split("->")
            .next()
            .unwrap_or("")
            .split(',')
            .count();
        if terms != operands.len() {
            bail!(
                "Einsum's equation `{}` names {terms} operand(s) but the node has {}",
                self.equation,
                operands.len()
            );
        }
        Ok(vec![Tensor::f_einsum(
            &self.equation,
            &operands,
            None::<&[i64]>,
        )?])
    }
}
