//! Excitation backprop (Zhang et al., 2016) on a linear node: each output's winning
//! probability is shared among the inputs in proportion to their excitation `a_j w⁺_ij`,
//! without the bias; on non-negative inputs (after ReLUs) this is the marginal winning
//! probability of the paper, and the z⁺ rule of LRP.
//!
//! Only the node's own share of its input's gradient is replaced: what the input's other
//! consumers sent back stays (a residual block's skip connection carries its probability past
//! the block), as TorchRay's excitation backprop does, whose hooks act on each layer alone.

use anyhow::Result;
use tch::Tensor;

use super::lrp::{output_relevance, propagate, Modification, Term};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct ExcitationBackprop {
    /// The dual unit of contrastive excitation backprop: the weights negated before their
    /// positive part is taken, so that the excitation is what speaks against the output.
    pub contrast: bool,
}

impl Rule for ExcitationBackprop {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let contrast = self.contrast;
        let weight =
            move |w: &Tensor| if contrast { w.neg() } else { w.shallow_clone() }.clamp_min(0.0);
        let modification = Modification {
            weight: Some(&weight),
            zero_bias: true,
        };
        // A tiny stabiliser only: an output with no excitation passes nothing back.
        let excitation = propagate(node, recorded, grads, 1e-12, modification)?;
        Ok(grads.input - own_plain_share(node, recorded, grads)? + excitation)
    }
}

/// What this node's plain backward added to its input's gradient: `J^T` of the gradient at its
/// output.
fn own_plain_share(node: &NodeView<'_>, recorded: &Recorded, grads: &Grads<'_>) -> Result<Tensor> {
    let keep = |p: &Tensor| p.shallow_clone();
    let term = Term::new(
        node,
        recorded,
        recorded.input()?.detach(),
        &keep,
        Some(&keep),
    )?;
    term.gradient(output_relevance(node, grads)?)
}
