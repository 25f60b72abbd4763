//! Points on the straight path from a baseline to the input, evaluated a chunk at a time with
//! the gradient of the target score at a layer: what LayerConductance and InternalInfluence
//! integrate.

use anyhow::Result;
use esegeta_plugin_api::{Context, Tap, TensorOrScalar};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::integrated_gradients::{default_n_steps, steps_per_eval, Rule};

/// The parameters of the layer path methods (InternalInfluence, LayerConductance), Captum's.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathParams {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it).
    pub layer: String,
    /// The starting point of the path: a number for every element, or a tensor file that
    /// broadcasts to the input (default 0).
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// Number of points on the path (Riemann rules need at least 2); LayerConductance, as
    /// Captum's, evaluates `n_steps + 1`.
    #[serde(default = "default_n_steps")]
    #[schemars(range(min = 1))]
    pub n_steps: usize,
    /// The quadrature rule.
    #[serde(default)]
    pub method: Rule,
    /// Path points evaluated together (times the batch size); default: as many as the memory
    /// budget allows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub internal_batch_size: Option<usize>,
    /// Attribute to the layer's input (the value its first node reads) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

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
