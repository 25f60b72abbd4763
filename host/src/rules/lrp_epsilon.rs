//! LRP-ε: relevance in proportion to each input's contribution to the output, with ε
//! absorbing weak or contradictory contributions (Captum's `EpsilonRule`, ε = 1e-9 by
//! default; ε = 0 is LRP-0).

use anyhow::Result;
use tch::Tensor;

use super::lrp::{propagate, Modification};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct LrpEpsilon {
    pub epsilon: f64,
}

impl Rule for LrpEpsilon {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let unchanged = Modification {
            weight: None,
            zero_bias: false,
        };
        propagate(node, recorded, grads, self.epsilon, unchanged)
    }
}
