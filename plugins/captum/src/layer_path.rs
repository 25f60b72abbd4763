//! Points on the straight path from a baseline to the input, evaluated a chunk at a time with
//! the gradient of the target score at a layer: what LayerConductance and InternalInfluence
//! integrate.

use anyhow::Result;
use esegeta_plugin_api::{Context, Tap};
use tch::Tensor;

use crate::integrated_gradients::steps_per_eval;

/// For each chunk of `alphas` (path points `baseline + alpha (x - baseline)`), calls
/// `visit(first, grads, acts)` with the index of the chunk's first point and the gradient and
/// value at the tapped layer output (or input) at its points, both `[k, B, ...layer dims]`.
pub(crate) fn along_path(
    ctx: &Context<'_>,
    inputs: &Tensor,
    baselines: &Tensor,
    target: i64,
    tap: Tap<'_>,
    alphas: &[f64],
    internal_batch_size: Option<usize>,
    mut visit: impl FnMut(usize, &Tensor, &Tensor) -> Result<()>,
) -> Result<()> {
    let per_eval = steps_per_eval(ctx, inputs, internal_batch_size);
    let diff = inputs - baselines;
    let mut done = 0;
    for points in alphas.chunks(per_eval) {
        ctx.check_cancelled()?;
        let scaled: Vec<Tensor> = points.iter().map(|&a| baselines + &diff * a).collect();
        let (grads, acts) = ctx.tap_gradient(&Tensor::cat(&scaled, 0), target, tap)?;
        let k = points.len() as i64;
        visit(done, &by_point(&grads, k), &by_point(&acts, k))?;
        done += points.len();
        ctx.progress(done, alphas.len());
    }
    Ok(())
}

/// `[k * B, ...]` (k copies of a batch, one after the other) as `[k, B, ...]`.
pub(crate) fn by_point(t: &Tensor, k: i64) -> Tensor {
    let size = t.size();
    let shape: Vec<i64> = [k, size[0] / k].iter().chain(&size[1..]).copied().collect();
    t.reshape(shape.as_slice())
}

/// Weights `[k]` shaped to broadcast against `[k, B, ...]` of rank `rank`.
pub(crate) fn per_point(weights: &[f32], rank: usize, like: &Tensor) -> Tensor {
    let mut shape = vec![1i64; rank];
    shape[0] = weights.len() as i64;
    Tensor::from_slice(weights)
        .to_device(like.device())
        .to_kind(like.kind())
        .view(shape.as_slice())
}

/// `k` copies of `inputs` one after the other along the batch, the layout of path points.
pub(crate) fn repeat_copies(inputs: &Tensor, k: i64) -> Tensor {
    let mut reps = vec![1i64; inputs.dim()];
    reps[0] = k;
    inputs.repeat(reps.as_slice())
}
