//! Grad-CAM++ (Chattopadhay et al., WACV 2018) as pytorch-grad-cam's `GradCAMPlusPlus`: each
//! channel weighs `sum over positions of ReLU(G) * a`, with
//! `a = G^2 / (2 G^2 + G^3 * sum over positions of A + 1e-6)` (0 where G is 0), the closed form
//! the paper derives for an exponential of the score.

use esegeta_plugin_api::{accumulation, register_method};
use tch::Tensor;

use crate::gradient_cam::{spatial, weighted_channels, GradientCam};

register_method!(GradientCam {
    id: "cnnvis.grad_cam_plus_plus",
    title: "Grad-CAM++",
    summary: "A layer's channels weighted by their positive gradients, each position \
               scaled by higher-order terms, so that several instances of a class all \
               show.",
    reference: "Chattopadhay et al., Grad-CAM++: Generalized Gradient-Based Visual \
               Explanations for Deep Convolutional Networks, WACV 2018; \
               pytorch-grad-cam GradCAMPlusPlus",
    combine,
});

fn combine(grad: &Tensor, activation: &Tensor) -> Tensor {
    let axes = spatial(activation);
    let squared = grad * grad;
    let cubed = &squared * grad;
    let total = activation.sum_dim_intlist(axes.as_slice(), true, accumulation(activation.kind()));
    let alpha = &squared / (&squared * 2.0 + total * cubed + 1e-6);
    let alpha = alpha.where_self(&grad.ne(0.0), &alpha.zeros_like());
    let weights = (grad.relu() * alpha).sum_dim_intlist(
        axes.as_slice(),
        false,
        accumulation(activation.kind()),
    );
    weighted_channels(&weights, activation)
}
