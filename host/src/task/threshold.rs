//! The `threshold` segmentation wrapper for one foreground channel `y`:
//! `y_norm` is `y` min-max normalised per example (no gradient), `t = otsu(y_norm)`,
//! `mask = y_norm > t`, and `scores = [sum(y * (1 - mask)), sum(y * mask)]`.
//! Gradients flow through `y`.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::{check_fixed_batch, otsu};

const BINS: i64 = 256;

pub struct Threshold {
    fixed: Option<Tensor>,
}

impl Threshold {
    pub fn new(reference: &Tensor, fixed: bool) -> Result<Self> {
        check_one_channel(reference)?;
        Ok(Threshold {
            fixed: if fixed {
                Some(foreground_mask(reference)?)
            } else {
                None
            },
        })
    }

    pub fn scores(&self, output: &Tensor) -> Result<Tensor> {
        check_one_channel(output)?;
        let mask = match &self.fixed {
            Some(mask) => {
                check_fixed_batch(mask, output)?;
                mask.shallow_clone()
            }
            None => foreground_mask(output)?,
        };
        let y = output.flatten(1, -1);
        let mask = mask.flatten(1, -1);
        let background = (&y * (1.0f64 - &mask)).sum_dim_intlist(1, false, Kind::Float);
        let foreground = (&y * &mask).sum_dim_intlist(1, false, Kind::Float);
        Ok(Tensor::stack(&[background, foreground], 1))
    }
}

fn check_one_channel(output: &Tensor) -> Result<()> {
    if output.size()[1] != 1 {
        bail!(
            "the threshold wrapper needs one foreground channel, but the model's output has {} \
             channels (shape {:?}); use --wrapper argmax for multi-class outputs",
            output.size()[1],
            output.size()
        );
    }
    Ok(())
}

/// Otsu's foreground of each example, `[B, 1, ...]`, without gradient. A constant output has
/// no foreground; a non-finite one is an error.
fn foreground_mask(output: &Tensor) -> Result<Tensor> {
    let y = output.detach().to_kind(Kind::Float);
    let masks = (0..y.size()[0])
        .map(|b| example_mask(&y.get(b)))
        .collect::<Result<Vec<Tensor>>>()?;
    Ok(Tensor::stack(&masks, 0).to_kind(output.kind()))
}

fn example_mask(y: &Tensor) -> Result<Tensor> {
    let (min, max) = (y.min().double_value(&[]), y.max().double_value(&[]));
    if !(min.is_finite() && max.is_finite()) {
        bail!(
            "the model's output holds NaN or infinite values, so the threshold wrapper cannot \
             split it into background and foreground; check the input's scale and the model \
             (in reduced precision, try fp32)"
        );
    }
    if max <= min {
        return Ok(y.zeros_like());
    }
    let normalised = (y - min) / (max - min);
    let hist = Vec::<f64>::try_from(
        normalised
            .f_histc(BINS)?
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu),
    )?;
    let t = otsu::threshold(&hist);
    Ok(normalised.gt(t).to_kind(Kind::Float))
}
