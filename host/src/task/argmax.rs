//! The `argmax` segmentation wrapper: each class scores the summed output over the pixels
//! the model assigns to it.

use anyhow::Result;
use tch::{Kind, Tensor};

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
    let mut shape = vec![1; output.dim()];
    shape[1] = classes;
    let channels = Tensor::arange(classes, (Kind::Int64, output.device())).view(shape.as_slice());
    channel_argmax(&output)
        .unsqueeze(1)
        .eq_tensor(&channels)
        .to_kind(output.kind())
}

/// The index of the largest channel of `[B, C, ...]`, `[B, ...]`: the first on ties, and NaN
/// counts as largest, as with torch's argmax. One elementwise pass per channel: libtorch's
/// argmax over a short channel axis strides through memory and took 10 times as long (a 64^3
/// UNet's two-class output, 2 threads: 41 against 4 ms per example).
fn channel_argmax(output: &Tensor) -> Tensor {
    let mut best = output.select(1, 0);
    let mut index = best.zeros_like().to_kind(Kind::Int64);
    for c in 1..output.size()[1] {
        let value = output.select(1, c);
        let better = value
            .gt_tensor(&best)
            .logical_or(&value.isnan().logical_and(&best.isnan().logical_not()));
        best = value.where_self(&better, &best);
        index = index.masked_fill(&better, c);
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_argmax_is_torchs_argmax_with_ties_and_nan() {
        let nan = f32::NAN;
        // [1, 3, 6]: a clear winner, a tie (first wins), all equal, NaN in the middle and last.
        let values = [
            [0.1, 2.0, 5.0, 1.0, 0.0, -1.0],
            [0.9, 2.0, 1.0, 1.0, nan, -1.0],
            [0.5, 1.0, 5.0, 1.0, 9.0, nan],
        ];
        let flat: Vec<f32> = values.iter().flatten().copied().collect();
        let output = Tensor::from_slice(&flat).view([1, 3, 6]);
        let ours = Vec::<i64>::try_from(channel_argmax(&output).view([-1])).unwrap();
        let torch = Vec::<i64>::try_from(output.argmax(1, false).view([-1])).unwrap();
        assert_eq!(ours, torch);
        assert_eq!(ours, vec![1, 0, 0, 0, 1, 2]);
    }
}
