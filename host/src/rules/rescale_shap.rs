//! DeepLift's rescale rule as shap 0.51's DeepExplainer applies it to an elementwise
//! nonlinearity (its `nonlinear_1d`, on ReLU, ELU, LeakyReLU, sigmoid, tanh, softplus, SELU,
//! GELU and, elementwise too, softmax). The batch is `[inputs; references]`; the multiplier is
//! `g_out * (Δy / Δx)`, falling back to the node's gradient where `|Δx| < eps` (shap's 1e-6).
//! Unlike Captum's rescale (rescale.rs), `g_out` is the output's gradient as a module's full
//! backward hook receives it, after the rules of the output's consumers (a max-pool after the
//! ReLU) have rewritten it.

use anyhow::{Context as _, Result};
use tch::Tensor;

use super::rescale::paired_deltas;
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct RescaleShap {
    pub eps: f64,
}

impl Rule for RescaleShap {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let (delta_in, delta_out) = paired_deltas(recorded.input()?, &recorded.outputs[0])?;
        let g = rewritten_output(node, grads)?;
        let small = delta_in.abs().lt(self.eps);
        Ok(grads
            .input
            .where_self(&small, &(g * (delta_out / &delta_in))))
    }
}

/// The output gradient after its consumers' rules (a full backward hook's `grad_output`).
pub fn rewritten_output<'g>(node: &NodeView<'_>, grads: &'g Grads<'_>) -> Result<&'g Tensor> {
    grads.outputs[0]
        .as_ref()
        .with_context(|| format!("no gradient reached the output of {}", node.name))
}
