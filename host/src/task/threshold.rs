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
            fixed: fixed.then(|| foreground_mask(reference)),
        })
    }

    pub fn scores(&self, output: &Tensor) -> Result<Tensor> {
        check_one_channel(output)?;
        let mask = match &self.fixed {
            Some(mask) => {
                check_fixed_batch(mask, output)?;
                mask.shallow_clone()
            }
            None => foreground_mask(output),
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
/// no foreground.
fn foreground_mask(output: &Tensor) -> Tensor {
    let y = output.detach().to_kind(Kind::Float);
    let masks: Vec<Tensor> = (0..y.size()[0]).map(|b| example_mask(&y.get(b))).collect();
    Tensor::stack(&masks, 0).to_kind(output.kind())
}

fn example_mask(y: &Tensor) -> Tensor {
    let (min, max) = (y.min().double_value(&[]), y.max().double_value(&[]));
    if max <= min {
        return y.zeros_like();
    }
    let normalised = (y - min) / (max - min);
    let hist = Vec::<f64>::try_from(
        normalised
            .histc(BINS)
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .expect("a histogram converts to a vector");
    let t = otsu::threshold(&hist);
    normalised.gt(t).to_kind(Kind::Float)
}
