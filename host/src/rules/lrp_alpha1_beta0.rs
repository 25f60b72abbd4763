//! LRP-α1β0 (z⁺ with bias when kept): only positive weights carry relevance (Captum's
//! `Alpha1_Beta0_Rule`, bias optionally zeroed). With non-negative inputs and the bias zeroed
//! this is also excitation backprop's marginal winning probability (Zhang et al., 2016).

use anyhow::Result;
use tch::Tensor;

use super::lrp::{propagate, Modification};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct LrpAlpha1Beta0 {
    pub set_bias_to_zero: bool,
}

impl Rule for LrpAlpha1Beta0 {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let weight = |w: &Tensor| w.clamp_min(0.0);
        let modification = Modification {
            weight: Some(&weight),
            zero_bias: self.set_bias_to_zero,
        };
        propagate(node, recorded, grads, 1e-9, modification)
    }
}
