//! Deconvnet (Zeiler and Fergus, 2014) on a ReLU: the output's gradient with its negative part
//! removed, whatever the ReLU's input was (`max(0, g)`).

use anyhow::Result;
use tch::Tensor;

use super::{Recorded, Rule};
use crate::model::graph::NodeView;

pub struct Deconvnet;

impl Rule for Deconvnet {
    fn backward(
        &self,
        _node: &NodeView<'_>,
        recorded: &Recorded,
        grad_outputs: &[Option<Tensor>],
    ) -> Result<Vec<Option<Tensor>>> {
        let grad = grad_outputs.first().and_then(|g| g.as_ref());
        let mut grads: Vec<Option<Tensor>> = recorded.inputs.iter().map(|_| None).collect();
        if let (Some(g), Some(slot)) = (grad, grads.first_mut()) {
            *slot = Some(g.relu());
        }
        Ok(grads)
    }
}
