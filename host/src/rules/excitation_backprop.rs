//! Excitation backprop (Zhang et al., 2016) on a linear node: each output's winning
//! probability is shared among the inputs in proportion to their excitation `a_j w⁺_ij`,
//! without the bias; on non-negative inputs (after ReLUs) this is the marginal winning
//! probability of the paper, and the z⁺ rule of LRP.

use anyhow::Result;
use tch::Tensor;

use super::lrp::{propagate, Modification};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct ExcitationBackprop;

impl Rule for ExcitationBackprop {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let weight = |w: &Tensor| w.clamp_min(0.0);
        let modification = Modification {
            weight: Some(&weight),
            zero_bias: true,
        };
        // A tiny stabiliser only: an output with no excitation passes nothing back.
        propagate(node, recorded, grads, 1e-12, modification)
    }
}
