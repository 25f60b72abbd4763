//! Guided backpropagation (Springenberg et al., 2015) on a ReLU: the gradient through the
//! ReLU, with its negative part removed (`max(0, g * [x > 0])`).

use anyhow::Result;
use tch::Tensor;

use super::{Recorded, Rule};
use crate::model::graph::NodeView;

pub struct GuidedBackprop;

impl Rule for GuidedBackprop {
    fn backward(
        &self,
        _node: &NodeView<'_>,
        recorded: &Recorded,
        grad_outputs: &[Option<Tensor>],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(recorded
            .vjp(grad_outputs)?
            .into_iter()
            .map(|g| g.map(|g| g.relu()))
            .collect())
    }
}
