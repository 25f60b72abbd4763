//! Guided Grad-CAM (Selvaraju et al., 2017) as CNN-visualisations composes it: guided
//! backpropagation times the layer's Grad-CAM (the layer's output weighted by the spatial mean
//! of the target score's gradient per channel, summed over channels, ReLU'd) brought to the
//! input's grid. The CAM is resized by nearest-neighbour interpolation and left unscaled, as
//! Captum's `GuidedGradCam` does; CNN-visualisations also rescales its CAM to [0, 1] and
//! resizes it with an antialiasing filter for display, which changes only the map's scale and
//! its edges.

use anyhow::{ensure, Result};
use esegeta_plugin_api::maps::resample_nearest;
use esegeta_plugin_api::{
    accumulation, register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::gradient_cam::{spatial, weighted_channels};
use crate::guided;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The convolutional layer (module path; `--layer` sets it) whose Grad-CAM weights the
    /// guided gradients, usually the last convolution.
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
            id: "cnnvis.guided_grad_cam",
            title: "Guided Grad-CAM (CNN-vis)",
            summary: "Guided backpropagation times the layer's Grad-CAM brought to the input's \
                      grid.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                backward_rules: true,
            },
            reference: "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via \
                        Gradient-based Localization, ICCV 2017; Ozbulak, PyTorch CNN \
                        Visualizations (guided_gradcam.py)",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let tap = Tap::capture(&p.layer);
        let token_grid = p.token_grid.as_deref();
        let (grad, activation) = ctx.spatial_tap_gradient(inputs, target, tap, token_grid)?;
        ensure!(
            activation.dim() == inputs.dim(),
            "guided Grad-CAM brings the layer's map to the input's grid, but layer `{}` gives \
             shape {:?} for an input of shape {:?}; pick a convolutional layer",
            p.layer,
            activation.size(),
            inputs.size()
        );
        let acc = accumulation(grad.kind());
        let (grad, activation) = (grad.to_kind(acc), activation.to_kind(acc));
        let weights = grad.mean_dim(spatial(&grad).as_slice(), false, accumulation(grad.kind()));
        let cam = weighted_channels(&weights, &activation).relu().unsqueeze(1);
        let cam = resample_nearest(&cam, &inputs.size()[2..])?;
        let guided = guided::of_target(ctx, inputs, target)?.to_kind(acc);
        Ok(Attribution::new((guided * cam).to_kind(inputs.kind())))
    }
}

register_method!(GuidedGradCam);
