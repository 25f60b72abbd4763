//! DeepLift's rule for max pooling, as Captum does it. The batch is `[inputs; references]`.
//! The output difference is split at the larger of the two pooled values,
//! `m = max(y, y_ref)`: `m - y_ref` is routed back to the input's maxima and `y - m` to the
//! reference's; the two routed maps are added and divided by `Δx`. Where `|Δx| < eps` Captum
//! falls back to the first example's gradient (its `grad_input[0]`), for every example:
//! reproduced here so that maps match.

use anyhow::Result;
use tch::Tensor;

use super::rescale::{halves, multipliers, plain_output};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct RescaleMaxPool {
    pub eps: f64,
}

impl Rule for RescaleMaxPool {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let g = plain_output(node, grads)?;
        let (x, x_ref) = halves(&recorded.input()?.detach())?;
        let (y, y_ref) = halves(&recorded.outputs[0].detach())?;
        let peak = y.maximum(&y_ref);
        let delta_out = Tensor::cat(&[&peak - &y_ref, &y - &peak], 0);
        // The pool's own backward routes each output to the position of its maximum, which is
        // what Captum's unpooling with the pool's indices does (for non-overlapping windows).
        let routed = recorded.vjp(&[Some(g * delta_out)])?;
        let Some(routed) = routed[0].as_ref() else {
            return Ok(grads.input.shallow_clone());
        };
        let (a, b) = halves(routed)?;
        let sum = a + b;
        let delta_in = &x - &x_ref;
        let fallback = grads.input.narrow(0, 0, 1).expand_as(grads.input);
        Ok(multipliers(
            &Tensor::cat(&[&delta_in, &delta_in], 0),
            &Tensor::cat(&[&sum, &sum], 0),
            &fallback,
            self.eps,
        ))
    }
}
