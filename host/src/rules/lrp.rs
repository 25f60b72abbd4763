//! The z-rule family of layer-wise relevance propagation (Bach et al., 2015; Montavon et al.,
//! 2019) on a linear node (Conv, Gemm, pooling, batch norm), as Captum's propagation rules
//! compute it: with `z` the node's output, possibly recomputed with modified weights,
//! `R_in = a * J^T (R_out / (z + eps * sign(z)))`, `sign(0) = 1`, where `a` is the node's
//! input and `R_out` the relevance arriving at its output.

use anyhow::{Context as _, Result};
use tch::Tensor;

use super::{Grads, Recorded};
use crate::model::graph::NodeView;

/// How a rule changes the node's parameters (inputs 1 and 2: weight and bias) before `z`.
pub struct Modification<'a> {
    pub weight: Option<&'a dyn Fn(&Tensor) -> Tensor>,
    pub zero_bias: bool,
}

/// The relevance at the node's input.
pub fn propagate(
    node: &NodeView<'_>,
    recorded: &Recorded,
    grads: &Grads<'_>,
    epsilon: f64,
    modification: Modification<'_>,
) -> Result<Tensor> {
    let relevance = output_relevance(node, grads)?;
    let keep = |p: &Tensor| p.shallow_clone();
    let weight = modification.weight.unwrap_or(&keep);
    let bias = (!modification.zero_bias).then_some(&keep as ParamFn<'_>);
    let term = Term::new(node, recorded, recorded.input()?.detach(), weight, bias)?;
    term.relevance(&(relevance / stabilised(&term.z, epsilon)))
}

/// One term of a rule that splits a node's computation (zennit's rules: α-β, z⁺, z^B): the
/// node run on a stand-in for its input (its positive part, a bound) with modified parameters.
pub struct Term {
    leaf: Tensor,
    /// The term's output, with autograd history to `leaf`.
    pub z: Tensor,
}

/// What a [`Term`] does to the node's weight and bias (inputs 1 and 2).
pub type ParamFn<'a> = &'a dyn Fn(&Tensor) -> Tensor;

impl Term {
    /// The node on `input` (shaped like its first input) with `weight` and `bias` applied to
    /// its parameters; `None` drops the bias.
    pub fn new(
        node: &NodeView<'_>,
        recorded: &Recorded,
        input: Tensor,
        weight: ParamFn<'_>,
        bias: Option<ParamFn<'_>>,
    ) -> Result<Self> {
        let leaf = input.detach().set_requires_grad(true);
        let floating = |t: &Option<Tensor>| t.as_ref().is_some_and(Tensor::is_floating_point);
        let mut inputs: Vec<Option<Tensor>> = recorded
            .inputs
            .iter()
            .map(|t| t.as_ref().map(Tensor::detach))
            .collect();
        inputs[0] = Some(leaf.shallow_clone());
        // Only floating parameters are weights and biases (a ReduceMean's axes are not).
        if inputs.len() > 1 && floating(&inputs[1]) {
            inputs[1] = inputs[1].as_ref().map(weight);
        }
        if inputs.len() > 2 && floating(&inputs[2]) {
            inputs[2] = match bias {
                Some(modify) => inputs[2].as_ref().map(modify),
                None => inputs[2].as_ref().map(Tensor::zeros_like),
            };
        }
        let z = node.run(&inputs)?.remove(0);
        Ok(Term { leaf, z })
    }

    /// `input * d(z . scale)/d(input)`: the relevance this term gives its input for
    /// `scale` (the output relevance over the rule's denominator).
    pub fn relevance(&self, scale: &Tensor) -> Result<Tensor> {
        Ok(self.leaf.detach() * self.gradient(scale)?)
    }

    /// `d(z . scale)/d(input)`: the term's plain backward of `scale`.
    pub fn gradient(&self, scale: &Tensor) -> Result<Tensor> {
        let objective = (&self.z * scale).sum(tch::Kind::Float);
        Ok(Tensor::f_run_backward(&[objective], &[&self.leaf], false, false)?.remove(0))
    }
}

/// The relevance arriving at the node's output.
pub fn output_relevance<'a>(node: &NodeView<'_>, grads: &'a Grads<'_>) -> Result<&'a Tensor> {
    grads.outputs[0]
        .as_ref()
        .with_context(|| format!("no relevance reached the output of {}", node.name))
}

/// `z + epsilon * sign(z)` with `sign(0) = 1`, detached: a rule's denominator.
pub fn stabilised(z: &Tensor, epsilon: f64) -> Tensor {
    let z = z.detach();
    let sign = z.sign().where_scalarother(&z.ne(0.0), 1.0);
    &z + sign * epsilon
}
