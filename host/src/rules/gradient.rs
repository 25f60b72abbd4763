//! The plain gradient: the node's own vector-Jacobian product.

use anyhow::Result;
use tch::Tensor;

use super::{Recorded, Rule};
use crate::model::graph::NodeView;

pub struct Gradient;

impl Rule for Gradient {
    fn backward(
        &self,
        _node: &NodeView<'_>,
        recorded: &Recorded,
        grad_outputs: &[Option<Tensor>],
    ) -> Result<Vec<Option<Tensor>>> {
        recorded.vjp(grad_outputs)
    }
}
