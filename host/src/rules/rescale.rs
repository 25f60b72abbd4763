//! DeepLift's rescale rule (Shrikumar et al., 2017) on an elementwise nonlinearity (ReLU, ELU,
//! sigmoid, tanh, ...). The batch is `[inputs; references]`; the multiplier is
//! `g_out * Δy / Δx` with the differences taken against each example's reference, falling
//! back to the gradient where `|Δx| < eps`, as Captum does. `g_out` is the output's gradient
//! as Captum's hook records it, before the rules of the output's consumers.

use anyhow::{Context as _, Result};
use tch::Tensor;

use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct Rescale {
    pub eps: f64,
}

impl Rule for Rescale {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let (delta_in, delta_out) = paired_deltas(recorded.input()?, &recorded.outputs[0])?;
        let g = plain_output(node, grads)?;
        Ok(multipliers(
            &delta_in,
            &(g * delta_out),
            grads.input,
            self.eps,
        ))
    }
}

/// The output gradient before its consumers' rules, or an error naming the node.
pub fn plain_output<'g>(node: &NodeView<'_>, grads: &'g Grads<'_>) -> Result<&'g Tensor> {
    grads.outputs_plain[0]
        .as_ref()
        .with_context(|| format!("no gradient reached the output of {}", node.name))
}

/// `x - x_ref` and `y - y_ref` for a `[inputs; references]` batch, repeated over both halves.
pub fn paired_deltas(input: &Tensor, output: &Tensor) -> Result<(Tensor, Tensor)> {
    let delta = |t: &Tensor| -> Result<Tensor> {
        let (a, b) = halves(t)?;
        let d = (a - b).detach();
        Ok(Tensor::cat(&[&d, &d], 0))
    };
    Ok((delta(input)?, delta(output)?))
}

/// The inputs' and the references' halves of a paired batch.
pub fn halves(t: &Tensor) -> Result<(Tensor, Tensor)> {
    let parts = t.f_chunk(2, 0)?;
    anyhow::ensure!(
        parts.len() == 2 && parts[0].size() == parts[1].size(),
        "a DeepLift rule needs a batch of inputs and their references, got {:?}",
        t.size()
    );
    let mut parts = parts.into_iter();
    Ok((parts.next().unwrap(), parts.next().unwrap()))
}

/// `numerator / Δx`, or `fallback` where `|Δx| < eps`.
pub fn multipliers(delta_in: &Tensor, numerator: &Tensor, fallback: &Tensor, eps: f64) -> Tensor {
    let small = delta_in.abs().lt(eps);
    fallback.where_self(&small, &(numerator / delta_in))
}
