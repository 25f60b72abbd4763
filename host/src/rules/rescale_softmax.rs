//! DeepLift's rescale on a softmax, as Captum does it: the rescale multipliers, then their mean
//! over the whole tensor (every example and reference) subtracted, since a softmax's outputs
//! sum to one and its contributions must sum to zero.

use anyhow::Result;
use tch::Tensor;

use super::rescale::{multipliers, paired_deltas, plain_output};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct RescaleSoftmax {
    pub eps: f64,
}

impl Rule for RescaleSoftmax {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let (delta_in, delta_out) = paired_deltas(recorded.input()?, &recorded.outputs[0])?;
        let g = plain_output(node, grads)?;
        let unnormalised = multipliers(&delta_in, &(g * delta_out), grads.input, self.eps);
        let mean = unnormalised.sum(unnormalised.kind()) / unnormalised.numel() as f64;
        Ok(&unnormalised - mean)
    }
}
