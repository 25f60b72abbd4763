//! Pass-through: the relevance at a node's output goes to its input unchanged (LRP's rule for
//! ReLU, dropout and tanh in Captum, whose `IdentityRule` this also is).

use anyhow::{Context as _, Result};
use tch::Tensor;

use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct PassThrough;

impl Rule for PassThrough {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        _recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        grads.outputs[0]
            .as_ref()
            .map(Tensor::shallow_clone)
            .with_context(|| format!("no relevance reached the output of {}", node.name))
    }
}
