//! DeepLift's rescale on a softmax, as Captum does it: the rescale multipliers, then their mean
//! over the whole tensor subtracted (a softmax's outputs sum to one, so its contributions
//! must sum to zero).

use anyhow::Result;
use tch::Tensor;

use super::rescale::{multipliers, paired_deltas};
use super::{Recorded, Rule};
use crate::model::graph::NodeView;

pub struct RescaleSoftmax {
    pub eps: f64,
}

impl Rule for RescaleSoftmax {
    fn backward(
        &self,
        _node: &NodeView<'_>,
        recorded: &Recorded,
        grad_outputs: &[Option<Tensor>],
    ) -> Result<Vec<Option<Tensor>>> {
        let mut grads = recorded.vjp(grad_outputs)?;
        let (Some(Some(plain)), Some(Some(g))) = (grads.first(), grad_outputs.first()) else {
            return Ok(grads);
        };
        let (delta_in, delta_out) = paired_deltas(recorded.input()?, &recorded.outputs[0])?;
        let unnormalised = multipliers(&delta_in, &(g * &delta_out), plain, self.eps);
        let mean = unnormalised.sum(unnormalised.kind()) / unnormalised.numel() as f64;
        grads[0] = Some(&unnormalised - mean);
        Ok(grads)
    }
}
