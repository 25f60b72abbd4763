//! An optimiser for methods that optimise an input (feature visualisation, DeepDream, inverted
//! representations), on one tensor and with PyTorch's update rules, so that a method follows
//! its PyTorch reference step by step. The caller computes the gradient; `step` updates the
//! values in place without autograd.

use tch::Tensor;

/// `torch.optim.Adam` (betas 0.9 and 0.999, eps 1e-8) with `weight_decay` as PyTorch's: an
/// L2 term added to the gradient.
pub struct Adam {
    /// The learning rate, which a schedule may change between steps.
    pub lr: f64,
    weight_decay: f64,
    step: i32,
    first: Tensor,
    second: Tensor,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    pub fn new(values: &Tensor, lr: f64, weight_decay: f64) -> Self {
        Adam {
            lr,
            weight_decay,
            step: 0,
            first: values.zeros_like().detach(),
            second: values.zeros_like().detach(),
        }
    }

    pub fn step(&mut self, values: &Tensor, grad: &Tensor) {
        tch::no_grad(|| {
            self.step += 1;
            let grad = if self.weight_decay == 0.0 {
                grad.shallow_clone()
            } else {
                grad + values * self.weight_decay
            };
            self.first = &self.first * Self::BETA1 + &grad * (1.0 - Self::BETA1);
            self.second = &self.second * Self::BETA2 + &grad * &grad * (1.0 - Self::BETA2);
            let corrected1 = 1.0 - Self::BETA1.powi(self.step);
            let corrected2 = 1.0 - Self::BETA2.powi(self.step);
            let denominator = self.second.sqrt() / corrected2.sqrt() + Self::EPS;
            let update = &self.first / denominator * (self.lr / corrected1);
            let mut values = values.shallow_clone();
            let _ = values.f_sub_(&update);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// On f(x) = x^2 / 2 from 1: Adam's first step is lr (m / sqrt(v) = 1); weight decay adds
    /// to the gradient but not to that first step's size.
    #[test]
    fn first_step_is_the_learning_rate() {
        for decay in [0.0, 0.5] {
            let x = Tensor::ones([1], (Kind::Float, Device::Cpu));
            let mut adam = Adam::new(&x, 0.1, decay);
            adam.step(&x, &x.copy());
            assert!((x.double_value(&[0]) - 0.9).abs() < 1e-6);
        }
    }
}
