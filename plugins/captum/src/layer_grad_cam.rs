//! GradCAM (Selvaraju et al., 2017) as Captum's `LayerGradCam`: a layer's output weighted by
//! the spatial mean of the target score's gradient per channel, summed over channels.
//!
//! The map is on the layer's grid, `[B, 1, ...layer spatial dims]`. Our `upsample_to_input`
//! resamples it to the input's spatial size as Captum's `LayerAttribution.interpolate` does
//! when asked for `bilinear` (2D layers) or `trilinear` (3D layers), with PyTorch's default
//! `align_corners=False`.

use crate::layer_params::capture;
use anyhow::{Context as _, Result};
use esegeta_plugin_api::maps::resample_to_input;
use esegeta_plugin_api::{
    accumulation, register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it); usually the last convolution.
    pub layer: String,
    /// Keep only positive attributions (a ReLU on the map), as the original GradCAM.
    #[serde(default)]
    pub relu_attributions: bool,
    /// Sum the weighted activations over the channel dimension (1); `false` keeps a map per
    /// channel.
    #[serde(default = "crate::yes")]
    pub attr_dim_summation: bool,
    /// Resample the map to the input's spatial size (bilinear for 2D layers, trilinear for 3D,
    /// `align_corners=False`), for display over the input. Not a Captum parameter.
    #[serde(default)]
    pub upsample_to_input: bool,
    /// Attribute to the layer's input (the value its first node reads) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
    /// For a vision transformer's token layer (`[B, 1 + h*w, C]`, or Swin's channels-last
    /// `[B, H, W, C]`): the patch grid `[h, w]` (`[d, h, w]` in 3D) the tokens are laid out
    /// on, leading class tokens dropped. By default the grid of the patch embedding (the
    /// convolution whose kernel equals its stride) that feeds the layer.
    #[serde(default)]
    pub token_grid: Option<Vec<i64>>,
}

pub struct LayerGradCam;

impl Method for LayerGradCam {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_grad_cam",
            title: "GradCAM",
            summary: "A layer's output weighted by the mean gradient of the target score per \
                      channel, summed over channels.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via \
                        Gradient-based Localization, ICCV 2017",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let tap = capture(&p.layer, p.attribute_to_layer_input);
        let token_grid = p.token_grid.as_deref();
        let (grad, activation) = ctx.spatial_tap_gradient(inputs, target, tap, token_grid)?;
        let map = grad_cam(
            &grad,
            &activation,
            p.attr_dim_summation,
            p.relu_attributions,
        );
        let map = if p.upsample_to_input {
            resample_to_input(&map, inputs, &p.layer, false)
                .context("upsample_to_input (drop it to keep the layer's grid)")?
        } else {
            map
        };
        Ok(Attribution::new(map.detach()))
    }
}

register_method!(LayerGradCam);

/// Captum's GradCAM arithmetic on a layer's gradient and output (`[B, C, ...]`).
fn grad_cam(grad: &Tensor, activation: &Tensor, sum_channels: bool, relu: bool) -> Tensor {
    let spatial: Vec<i64> = (2..grad.dim() as i64).collect();
    // Captum leaves a layer without spatial dims (`[B, C]`) unaveraged.
    let weights = if spatial.is_empty() {
        grad.shallow_clone()
    } else {
        grad.mean_dim(spatial.as_slice(), true, accumulation(grad.kind()))
    };
    let weighted = weights * activation;
    let map = if sum_channels {
        weighted.sum_dim_intlist(1, true, accumulation(weighted.kind()))
    } else {
        weighted
    };
    if relu {
        map.relu()
    } else {
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_the_spatial_mean_of_the_gradient() {
        // One example, two channels of 1x2: weights are the channel means (1.5 and -1).
        let grad = Tensor::from_slice(&[1.0f32, 2.0, -1.0, -1.0]).view([1, 2, 1, 2]);
        let act = Tensor::from_slice(&[1.0f32, 3.0, 2.0, 0.0]).view([1, 2, 1, 2]);
        let map = grad_cam(&grad, &act, true, false);
        assert_eq!(map.size(), vec![1, 1, 1, 2]);
        // [1.5 * 1 - 1 * 2, 1.5 * 3 - 1 * 0]
        assert_eq!(
            Vec::<f32>::try_from(map.flatten(0, -1)).unwrap(),
            [-0.5, 4.5]
        );
        let relu = grad_cam(&grad, &act, true, true);
        assert_eq!(
            Vec::<f32>::try_from(relu.flatten(0, -1)).unwrap(),
            [0.0, 4.5]
        );
        let per_channel = grad_cam(&grad, &act, false, false);
        assert_eq!(per_channel.size(), vec![1, 2, 1, 2]);
    }

    #[test]
    fn a_flat_layer_is_not_averaged() {
        let grad = Tensor::from_slice(&[2.0f32, -1.0]).view([1, 2]);
        let act = Tensor::from_slice(&[3.0f32, 4.0]).view([1, 2]);
        let map = grad_cam(&grad, &act, true, false);
        assert_eq!(Vec::<f32>::try_from(map.flatten(0, -1)).unwrap(), [2.0]);
    }
}
