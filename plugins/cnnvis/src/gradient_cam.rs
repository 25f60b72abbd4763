//! What the gradient-weighted class activation maps share: the layer's output A and the
//! gradient G of each example's target score with respect to it, combined by the method into
//! one map per example, `ReLU(sum over channels of ...)` on the layer's grid,
//! `[B, 1, ...layer spatial dims]`, as pytorch-grad-cam 1.5.7 computes before its display
//! scaling. A method is one [`GradientCam`] value: its description and its combination, a
//! function of (G, A) giving the channel-summed map.

use anyhow::{ensure, Result};
use esegeta_plugin_api::maps::resample_to_input;
use esegeta_plugin_api::{
    accumulation, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it): usually the last convolution, or an earlier one for finer maps.
    pub layer: String,
    /// Resample the map to the input's spatial size (bilinear for 2D layers, trilinear for 3D,
    /// `align_corners=False`), for display over the input.
    #[serde(default)]
    pub upsample_to_input: bool,
    /// For a vision transformer's token layer (`[B, 1 + h*w, C]`, or Swin's channels-last
    /// `[B, H, W, C]`): the patch grid `[h, w]` (`[d, h, w]` in 3D) the tokens are laid out
    /// on, leading class tokens dropped. By default the grid of the patch embedding (the
    /// convolution whose kernel equals its stride) that feeds the layer.
    #[serde(default)]
    pub token_grid: Option<Vec<i64>>,
}

/// One gradient CAM: its description and how it combines G and A into the channel-summed
/// map `[B, ...layer spatial dims]` (ReLU'd and given a channel dimension here).
pub struct GradientCam {
    pub id: &'static str,
    pub title: &'static str,
    pub summary: &'static str,
    pub reference: &'static str,
    pub combine: fn(&Tensor, &Tensor) -> Tensor,
}

impl Method for GradientCam {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: self.id,
            title: self.title,
            summary: self.summary,
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: self.reference,
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
            activation.dim() >= 3,
            "a class activation map needs a layer with spatial dimensions, but layer `{}` \
             gives shape {:?}; pick a convolutional layer (`esegeta layers MODEL` lists them \
             with shapes given --input)",
            p.layer,
            activation.size()
        );
        let acc = accumulation(grad.kind());
        let (grad, activation) = (grad.to_kind(acc), activation.to_kind(acc));
        let map = (self.combine)(&grad, &activation).relu().unsqueeze(1);
        let map = if p.upsample_to_input {
            resample_to_input(&map, inputs, &p.layer, false)?
        } else {
            map
        };
        Ok(Attribution::new(map.detach().to_kind(inputs.kind())))
    }
}

/// The spatial dimensions of a layer's value `[B, C, ...]`.
pub fn spatial(t: &Tensor) -> Vec<i64> {
    (2..t.dim() as i64).collect()
}

/// `sum over channels of weights[b, k] * A[b, k, ...]`, for per-channel `weights` `[B, C]`.
pub fn weighted_channels(weights: &Tensor, activation: &Tensor) -> Tensor {
    let mut shape = weights.size();
    shape.extend(std::iter::repeat_n(1, activation.dim() - 2));
    (weights.view(shape.as_slice()) * activation).sum_dim_intlist(
        1,
        false,
        accumulation(activation.kind()),
    )
}
