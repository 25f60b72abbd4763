//! XGrad-CAM (Fu et al., BMVC 2020) as pytorch-grad-cam's `XGradCAM`: each channel weighs
//! `sum over positions of G * A / (sum over positions of A + 1e-7)`, the weights the paper
//! derives from its sensitivity and conservation axioms.

use esegeta_plugin_api::{accumulation, register_method};
use tch::Tensor;

use crate::gradient_cam::{spatial, weighted_channels, GradientCam};

register_method!(GradientCam {
    id: "cnnvis.xgrad_cam",
    title: "XGrad-CAM",
    summary: "A layer's channels weighted by their activation-weighted mean gradient \
               (the weights of the sensitivity and conservation axioms).",
    reference: "Fu et al., Axiom-based Grad-CAM: Towards Accurate Visualization and \
               Explanation of CNNs, BMVC 2020; pytorch-grad-cam XGradCAM",
    combine,
});

fn combine(grad: &Tensor, activation: &Tensor) -> Tensor {
    let axes = spatial(activation);
    let total = activation.sum_dim_intlist(axes.as_slice(), true, accumulation(activation.kind()));
    let weights = (grad * activation / (total + 1e-7)).sum_dim_intlist(
        axes.as_slice(),
        false,
        accumulation(activation.kind()),
    );
    weighted_channels(&weights, activation)
}
