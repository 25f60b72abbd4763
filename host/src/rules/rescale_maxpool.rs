//! DeepLift's rule for max pooling, as Captum does it. The batch is `[inputs; references]`.
//! The output difference is split at the larger of the two pooled values,
//! `m = max(y, y_ref)`: `m - y_ref` is routed back to the input's maxima and `y - m` to the
//! reference's; the two routed maps are added and divided by `Δx` (the gradient where
//! `|Δx| < eps`).

use anyhow::Result;
use tch::Tensor;

use super::rescale::{halves, multipliers};
use super::{Recorded, Rule};
use crate::model::graph::NodeView;

pub struct RescaleMaxPool {
    pub eps: f64,
}

impl Rule for RescaleMaxPool {
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
        let input = recorded.input()?.detach();
        let output = recorded.outputs[0].detach();
        let (x, x_ref) = halves(&input)?;
        let (y, y_ref) = halves(&output)?;
        let peak = y.maximum(&y_ref);
        let delta_out = Tensor::cat(&[&peak - &y_ref, &y - &peak], 0);
        // The pool's own backward routes each output to the position of its maximum, which is
        // what unpooling with the pool's indices does.
        let routed = recorded.vjp(&[Some(g * delta_out)])?;
        let Some(routed) = routed[0].as_ref() else {
            return Ok(grads);
        };
        let (a, b) = halves(routed)?;
        let sum = a + b;
        let delta_in = &x - &x_ref;
        grads[0] = Some(multipliers(
            &Tensor::cat(&[&delta_in, &delta_in], 0),
            &Tensor::cat(&[&sum, &sum], 0),
            plain,
            self.eps,
        ));
        Ok(grads)
    }
}
