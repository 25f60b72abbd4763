//! Baseline distributions (DeepLiftShap, GradientShap): a tensor file of `N` reference
//! examples, each shaped like one input example.

use anyhow::{bail, Result};
use esegeta_plugin_api::{Context, TensorOrScalar};
use tch::Tensor;

/// The `N` baselines in `path`, as `[N, ...]` with the input's kind and device. A file holding
/// a single example without its batch axis is taken as `N = 1`.
pub(crate) fn distribution(ctx: &Context<'_>, path: &str, inputs: &Tensor) -> Result<Tensor> {
    let loaded = ctx
        .load_tensor(path)?
        .to_kind(inputs.kind())
        .to_device(inputs.device());
    let example = &inputs.size()[1..];
    let loaded = if loaded.size() == example {
        loaded.unsqueeze(0)
    } else {
        loaded
    };
    if loaded.dim() != inputs.dim() || &loaded.size()[1..] != example {
        bail!(
            "`baselines` ({path}) has shape {:?}; a baseline distribution must be [N, {}] like \
             the input's examples",
            loaded.size(),
            example
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(loaded)
}

/// GradientShap's `baselines`: a distribution file, or one constant baseline `[1, ...]`.
pub(crate) fn distribution_or_constant(
    ctx: &Context<'_>,
    baselines: &TensorOrScalar,
    inputs: &Tensor,
) -> Result<Tensor> {
    match baselines {
        TensorOrScalar::File(path) => distribution(ctx, path, inputs),
        TensorOrScalar::Scalar(v) => Ok(inputs.narrow(0, 0, 1).full_like(*v)),
    }
}

/// A SHAP method's distribution: `distribution` with at least two baselines, else an error
/// naming `method` and `single`, the method for one baseline.
pub(crate) fn shap_distribution(
    ctx: &Context<'_>,
    path: &str,
    inputs: &Tensor,
    method: &str,
    single: &str,
) -> Result<Tensor> {
    let baselines = distribution(ctx, path, inputs)?;
    if baselines.size()[0] < 2 {
        bail!(
            "`baselines` ({path}) holds one example; {method} needs a distribution of several \
             (use {single} for a single baseline)"
        );
    }
    Ok(baselines)
}

/// Every input paired with every baseline: inputs repeated `N` times each (input-major), and
/// the baselines tiled `B` times, as Captum expands them.
pub(crate) fn pair_all(inputs: &Tensor, baselines: &Tensor) -> (Tensor, Tensor) {
    let (b, n) = (inputs.size()[0], baselines.size()[0]);
    let mut tile = vec![1i64; baselines.dim()];
    tile[0] = b;
    (
        inputs.repeat_interleave_self_int(n, 0, None),
        baselines.repeat(tile.as_slice()),
    )
}

/// The mean over each input's `n` consecutive rows of `t` `[B * n, ...]`.
pub(crate) fn mean_per_input(t: &Tensor, n: i64) -> Tensor {
    let mut shape = t.size();
    let rows = shape[0];
    shape[0] = n;
    shape.insert(0, rows / n);
    t.reshape(shape.as_slice()).mean_dim(1, false, t.kind())
}
