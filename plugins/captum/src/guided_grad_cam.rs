//! Guided Grad-CAM (Selvaraju et al., 2017), as Captum 0.9 computes it: guided
//! backpropagation times the layer's Grad-CAM map (with its ReLU), upsampled to the input's
//! size by nearest-neighbour interpolation.

use anyhow::{bail, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tch::Tensor;

use crate::guided_backprop::relu_rule_gradient;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The convolutional layer (module path) whose Grad-CAM map weights the guided gradients.
    pub layer: String,
    /// For a vision transformer's token layer (`[B, 1 + h*w, C]`, or Swin's channels-last
    /// `[B, H, W, C]`): the patch grid `[h, w]` (`[d, h, w]` in 3D) the tokens are laid out
    /// on, leading class tokens dropped. By default the grid of the patch embedding (the
    /// convolution whose kernel equals its stride) that feeds the layer.
    #[serde(default)]
    pub token_grid: Option<Vec<i64>>,
}

pub struct GuidedGradCam;

impl Method for GuidedGradCam {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.guided_grad_cam",
            title: "Guided Grad-CAM",
            summary: "Guided backpropagation times a layer's Grad-CAM map upsampled to the input.",
            kind: MethodKind::LayerAttribution,
            needs: Needs { gradients: true, layers: true, backward_rules: true },
            reference: "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization, ICCV 2017",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let params =
            json!({"layer": p.layer, "relu_attributions": true, "token_grid": p.token_grid});
        let cam = ctx
            .explain("captum.layer_grad_cam", &params, inputs, target)?
            .map;
        let guided = relu_rule_gradient(ctx, inputs, target, "guided_backprop")?;
        let cam = upsample_nearest(&cam, &inputs.size()[2..])?;
        Ok(Attribution::new(guided * cam))
    }
}

register_method!(GuidedGradCam);

/// `map` `[B, C, ...]` resized to the spatial `size` by nearest-neighbour interpolation
/// (PyTorch's `interpolate(mode="nearest")`).
fn upsample_nearest(map: &Tensor, size: &[i64]) -> Result<Tensor> {
    if map.dim() as usize != size.len() + 2 {
        bail!(
            "the layer's Grad-CAM map has shape {:?}, which cannot be resized to the input's \
             spatial size {size:?}; choose a layer with as many spatial dimensions as the input",
            map.size()
        );
    }
    esegeta_plugin_api::maps::resample_nearest(map, size)
}
