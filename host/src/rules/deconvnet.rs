//! Deconvnet (Zeiler and Fergus, 2014) on a ReLU: the output's gradient with its negative part
//! removed, whatever the ReLU's input was (`max(0, g)`).

use anyhow::{Context as _, Result};
use tch::Tensor;

use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct Deconvnet;

impl Rule for Deconvnet {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        _recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let grad = grads.outputs_plain[0]
            .as_ref()
            .with_context(|| format!("no gradient reached the output of {}", node.name))?;
        Ok(grad.relu())
    }
}
