//! LRP-γ: positive weights count `1 + γ` times (`w + γ w⁺`), favouring positive evidence
//! (Captum's `GammaRule`, γ = 0.25 by default; its bias is optionally zeroed).

use anyhow::Result;
use tch::Tensor;

use super::lrp::{propagate, Modification};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct LrpGamma {
    pub gamma: f64,
    pub set_bias_to_zero: bool,
}

impl Rule for LrpGamma {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let gamma = self.gamma;
        let weight = move |w: &Tensor| w + w.clamp_min(0.0) * gamma;
        let modification = Modification {
            weight: Some(&weight),
            zero_bias: self.set_bias_to_zero,
        };
        propagate(node, recorded, grads, 1e-9, modification)
    }
}
