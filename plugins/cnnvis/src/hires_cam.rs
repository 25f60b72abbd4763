//! HiResCAM (Draelos & Carin, 2020) as pytorch-grad-cam's `HiResCAM`: the layer's output times
//! its gradient, summed over channels, `sum over channels of G * A`. Unlike GradCAM's
//! channel-wide weights, it shows only positions that raise the score through the layer.

use esegeta_plugin_api::{accumulation, register_method};
use tch::Tensor;

use crate::gradient_cam::GradientCam;

register_method!(GradientCam {
    id: "cnnvis.hires_cam",
    title: "HiResCAM",
    summary: "A layer's output times its gradient, position by position, summed over \
               channels.",
    reference: "Draelos & Carin, Use HiResCAM instead of Grad-CAM for faithful \
               explanations of convolutional neural networks, arXiv:2011.08891, 2020; \
               pytorch-grad-cam HiResCAM",
    combine,
});

fn combine(grad: &Tensor, activation: &Tensor) -> Tensor {
    (grad * activation).sum_dim_intlist(1, false, accumulation(activation.kind()))
}
