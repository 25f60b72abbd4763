//! The `argmax` segmentation wrapper: each class scores the summed output over the pixels
//! the model assigns to it.

use anyhow::Result;
use tch::Tensor;

use super::{check_fixed_batch, sum_spatial};

pub struct Argmax {
    /// The one-hot argmax mask of the unperturbed input, when fixed.
    fixed: Option<Tensor>,
}

impl Argmax {
    pub fn new(reference: &Tensor, fixed: bool) -> Self {
        Argmax {
            fixed: fixed.then(|| one_hot_argmax(reference)),
        }
    }

    pub fn scores(&self, output: &Tensor) -> Result<Tensor> {
        let mask = match &self.fixed {
            Some(mask) => {
                check_fixed_batch(mask, output)?;
                mask.shallow_clone()
            }
            None => one_hot_argmax(output),
        };
        Ok(sum_spatial(&(output * mask)))
    }
}

/// `[B, C, ...]` -> one-hot of the argmax over C, same shape, without gradient.
fn one_hot_argmax(output: &Tensor) -> Tensor {
    let output = output.detach();
    let classes = output.size()[1];
    output
        .argmax(1, false)
        .one_hot(classes)
        .movedim(&[-1], &[1])
        .to_kind(output.kind())
}
