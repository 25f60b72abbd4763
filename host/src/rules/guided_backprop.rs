//! Guided backpropagation (Springenberg et al., 2015) on a ReLU: the gradient through the
//! ReLU with its negative part removed (`max(0, g * [x > 0])`).

use anyhow::Result;
use tch::Tensor;

use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct GuidedBackprop;

impl Rule for GuidedBackprop {
    fn rewrite(
        &self,
        _node: &NodeView<'_>,
        _recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        Ok(grads.input.relu())
    }
}
