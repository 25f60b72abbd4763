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
    let relevance = grads.outputs[0]
        .as_ref()
        .with_context(|| format!("no relevance reached the output of {}", node.name))?;
    let a = recorded.input()?.detach();
    let leaf = a.shallow_clone().set_requires_grad(true);
    let mut inputs: Vec<Option<Tensor>> = recorded
        .inputs
        .iter()
        .map(|t| t.as_ref().map(Tensor::detach))
        .collect();
    inputs[0] = Some(leaf.shallow_clone());
    // Only floating parameters are weights and biases (a ReduceMean's axes are not).
    let floating = |t: &Option<Tensor>| t.as_ref().is_some_and(Tensor::is_floating_point);
    if let (Some(modify), true) = (
        modification.weight,
        inputs.len() > 1 && floating(&inputs[1]),
    ) {
        inputs[1] = inputs[1].as_ref().map(modify);
    }
    if modification.zero_bias && inputs.len() > 2 && floating(&inputs[2]) {
        inputs[2] = inputs[2].as_ref().map(Tensor::zeros_like);
    }
    let z = node.run(&inputs)?.remove(0);
    let sign = z.sign().where_scalarother(&z.ne(0.0), 1.0).detach();
    let scaled = relevance / (z.detach() + sign * epsilon);
    let objective = (&z * scaled).sum(tch::Kind::Float);
    let grad = Tensor::f_run_backward(&[objective], &[&leaf], false, false)?.remove(0);
    Ok(a * grad)
}
