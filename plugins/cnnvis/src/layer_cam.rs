//! LayerCAM (Jiang et al., IEEE TIP 2021) as pytorch-grad-cam's `LayerCAM`: each position of
//! each channel weighed by its own positive gradient, `sum over channels of ReLU(G) * A`, which
//! keeps the detail of shallow layers that channel-wide weights average away.

use esegeta_plugin_api::{accumulation, register_method};
use tch::Tensor;

use crate::gradient_cam::GradientCam;

register_method!(GradientCam {
    id: "cnnvis.layer_cam",
    title: "LayerCAM",
    summary: "A layer's output weighted position by position by its positive gradient, \
               summed over channels; fine maps from shallow layers too.",
    reference: "Jiang et al., LayerCAM: Exploring Hierarchical Class Activation Maps for \
               Localization, IEEE Transactions on Image Processing 2021; \
               pytorch-grad-cam LayerCAM",
    combine,
});

fn combine(grad: &Tensor, activation: &Tensor) -> Tensor {
    (grad.relu() * activation).sum_dim_intlist(1, false, accumulation(activation.kind()))
}
