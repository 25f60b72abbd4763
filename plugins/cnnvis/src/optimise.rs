//! What the methods that optimise an input share (DeepDream, layer visualisation, inverted
//! representation): the layer's value as a differentiable function of the input, checks of
//! their parameters that run before any step, and the image operations they use in 2D and
//! 3D alike (total variation, resizing, rolling).

use anyhow::{bail, ensure, Result};
use esegeta_plugin_api::{Context, Tap};
use tch::{Kind, Tensor};

/// `layer`'s value for `x`, with autograd history back to `x`.
pub fn layer_value(ctx: &Context<'_>, x: &Tensor, layer: &str) -> Result<Tensor> {
    let mut values = ctx.layer_values(x, &[Tap::capture(layer)])?;
    let value = values.remove(0);
    if x.requires_grad() && !value.requires_grad() {
        bail!(
            "the value of layer `{layer}` carries no gradient back to the input (a model \
             exported with a fixed batch runs in chunks and copies it); export the model with \
             a dynamic batch (tools/export_model.py)"
        );
    }
    Ok(value)
}

/// Refuses a `filter` that is not a channel of `value` (`[B, C, ...]`), naming the layer.
pub fn check_filter(value: &Tensor, filter: i64, layer: &str) -> Result<()> {
    let channels = if value.dim() >= 2 { value.size()[1] } else { 0 };
    ensure!(
        (0..channels).contains(&filter),
        "filter {filter} is not a channel of layer `{layer}`, whose output has shape {:?}; \
         give a channel below {channels}",
        value.size()
    );
    Ok(())
}

/// Refuses a parameter that is not a finite number above 0.
pub fn positive(name: &str, value: f64) -> Result<()> {
    ensure!(
        value > 0.0 && value.is_finite(),
        "{name} must be a finite number above 0 (it is {value})"
    );
    Ok(())
}

/// Refuses a parameter that is not a finite number of at least 0.
pub fn non_negative(name: &str, value: f64) -> Result<()> {
    ensure!(
        value >= 0.0 && value.is_finite(),
        "{name} must be a finite number of at least 0 (it is {value})"
    );
    Ok(())
}

/// Refuses a count of 0 (`steps`, `octaves`: the schema says so too, but a config can
/// bypass it).
pub fn at_least_one(name: &str, count: usize) -> Result<()> {
    ensure!(count > 0, "{name} must be at least 1 (it is 0)");
    Ok(())
}

/// The spatial axes of `x` (`[B, C, ...]`).
pub fn spatial_axes(x: &Tensor) -> Vec<i64> {
    (2..x.dim() as i64).collect()
}

/// Total variation with exponent `beta` (Mahendran & Vedaldi, 2015): over the positions that
/// have a neighbour along every spatial axis, the sum of (the sum over axes of the squared
/// forward difference) to the power `beta / 2`.
pub fn total_variation(x: &Tensor, beta: f64) -> Tensor {
    let axes = spatial_axes(x);
    let inner = axes.iter().fold(x.shallow_clone(), |t, &a| {
        t.narrow(a, 0, x.size()[a as usize] - 1)
    });
    let mut squares = inner.zeros_like();
    for &axis in &axes {
        let shifted = axes.iter().fold(x.shallow_clone(), |t, &a| {
            let start = i64::from(a == axis);
            t.narrow(a, start, x.size()[a as usize] - 1)
        });
        squares = squares + (shifted - &inner).square();
    }
    squares.pow_tensor_scalar(beta / 2.0).sum(Kind::Float)
}

/// `x` resized to the spatial `size`: bilinear in 2D, trilinear in 3D, `align_corners=False`.
pub fn resize(x: &Tensor, size: &[i64]) -> Result<Tensor> {
    Ok(match size.len() {
        2 => x.f_upsample_bilinear2d(size, false, None, None)?,
        3 => x.f_upsample_trilinear3d(size, false, None, None, None)?,
        n => bail!("resizing needs 2 or 3 spatial dimensions, but the input has {n}"),
    })
}

/// The input's value range, as `(min, max)`.
pub fn range(x: &Tensor) -> (f64, f64) {
    (x.min().double_value(&[]), x.max().double_value(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn total_variation_of_a_ramp() {
        // x[i, j] = i: every inner position has differences (1, 0); beta 2 sums 1 over 2x2.
        let ramp = Tensor::arange(3, (Kind::Float, Device::Cpu))
            .view([1, 1, 3, 1])
            .expand([1, 1, 3, 3], false);
        assert_eq!(total_variation(&ramp, 2.0).double_value(&[]), 4.0);
        let cube = Tensor::ones([1, 1, 3, 3, 3], (Kind::Float, Device::Cpu));
        assert_eq!(total_variation(&cube, 2.0).double_value(&[]), 0.0);
    }
}
