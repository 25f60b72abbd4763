//! DeepLift's rescale rule as shap 0.51's DeepExplainer applies it to an elementwise
//! nonlinearity (its `nonlinear_1d`, on ReLU, ELU, LeakyReLU, sigmoid, tanh, softplus, SELU,
//! GELU and, elementwise too, softmax). The batch is `[inputs; references]`; the multiplier is
//! `g_out * (Δy / Δx)`, falling back to the node's gradient where `|Δx| < eps` (shap's 1e-6).
//! Unlike Captum's rescale (rescale.rs), `g_out` is the output's gradient as a module's full
//! backward hook receives it, after the rules of the output's consumers (a max-pool after the
//! ReLU) have rewritten it; and, as a full backward hook's return does, the rule replaces only
//! this node's own share of its input's gradient, leaving other consumers' shares (a skip
//! connection's) as they are, where Captum's rules rewrite the whole.

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
        let (own, others) = own_share(recorded, grads)?;
        let small = delta_in.abs().lt(self.eps);
        Ok(others + own.where_self(&small, &(g * (delta_out / &delta_in))))
    }
}

/// This node's plain share of its input's gradient (a full backward hook's `grad_input`) and
/// the rest (the other consumers' shares).
pub fn own_share(recorded: &Recorded, grads: &Grads<'_>) -> Result<(Tensor, Tensor)> {
    let own = recorded.vjp(grads.outputs)?.swap_remove(0);
    let own = own.map_or_else(|| grads.input.zeros_like(), |t| t.detach());
    let others = grads.input - &own;
    Ok((own, others))
}

/// The output gradient after its consumers' rules (a full backward hook's `grad_output`).
pub fn rewritten_output<'g>(node: &NodeView<'_>, grads: &'g Grads<'_>) -> Result<&'g Tensor> {
    grads.outputs[0]
        .as_ref()
        .with_context(|| format!("no gradient reached the output of {}", node.name))
}
