//! DeepLift's rule for max pooling as shap 0.51's DeepExplainer does it (its `maxpool`). The
//! batch is `[inputs; references]`; with `m = max(y, y_ref)`, `m - y_ref` is routed back to the
//! input's maxima and `y - m` to the reference's, the two are added and divided by `Δx`. It
//! differs from Captum's (rescale_maxpool.rs) in two ways that change maps: where
//! `|Δx| < eps` (shap's 1e-7) the multiplier is 0, not a gradient, and the output gradient is
//! the one after its consumers' rules (a full backward hook's `grad_output`). Like
//! rescale_shap.rs it replaces only the pool's own share of its input's gradient.

use anyhow::Result;
use tch::Tensor;

use super::rescale::halves;
use super::rescale_shap::{own_share, rewritten_output};
use super::{Grads, Recorded, Rule};
use crate::model::graph::NodeView;

pub struct RescaleMaxPoolShap {
    pub eps: f64,
}

impl Rule for RescaleMaxPoolShap {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor> {
        let g = rewritten_output(node, grads)?;
        let (x, x_ref) = halves(&recorded.input()?.detach())?;
        let (y, y_ref) = halves(&recorded.outputs[0].detach())?;
        let peak = y.maximum(&y_ref);
        let delta_out = Tensor::cat(&[&peak - &y_ref, &y - &peak], 0);
        // The pool's own backward routes each output to its maximum's position, as shap's
        // unpooling with the pool's indices does (for non-overlapping windows).
        let routed = recorded.vjp(&[Some(g * delta_out)])?;
        let (_, others) = own_share(recorded, grads)?;
        let Some(routed) = routed[0].as_ref() else {
            return Ok(others);
        };
        let (a, b) = halves(routed)?;
        let delta_in = &x - &x_ref;
        let small = delta_in.abs().lt(self.eps);
        let half = (a + b) / &delta_in;
        let half = half.zeros_like().where_self(&small, &half);
        Ok(others + Tensor::cat(&[&half, &half], 0))
    }
}
