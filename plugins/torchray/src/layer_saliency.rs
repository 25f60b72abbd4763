//! TorchRay's layer saliency methods: the target score's gradient G at a layer's output A,
//! combined by the method into one map per example on the layer's grid, `[B, 1, ...layer
//! spatial dims]`, then smoothed and resized as [`Post`] says. One [`LayerSaliency`] value per
//! method: Grad-CAM and the linear approximation differ only in the combination.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    accumulation, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::saliency::{Post, Resize, ResizeMode};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer (TorchRay's `saliency_layer`), by its PyTorch module path (`esegeta layers
    /// MODEL` lists them; `--layer` sets it).
    pub layer: String,
    /// Resample the map from the layer's grid: `true` to the input's (TorchRay's
    /// `resize=True`), or to the given size. Default false.
    #[serde(default)]
    pub resize: Resize,
    /// The resampling of `resize`: `bilinear` (trilinear in 3D, `align_corners=False`),
    /// `bicubic` (2D) or `nearest`. Default: bilinear.
    #[serde(default)]
    pub resize_mode: ResizeMode,
    /// A Gaussian blur of the map after any resizing, with a standard deviation of this
    /// fraction of the map's largest side (TorchRay's `smooth`); 0 (the default): none.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub smooth: f64,
    /// For a vision transformer's token layer (`[B, 1 + h*w, C]`, or Swin's channels-last
    /// `[B, H, W, C]`): the patch grid `[h, w]` (`[d, h, w]` in 3D) the tokens are laid out
    /// on, leading class tokens dropped. By default the grid of the patch embedding (the
    /// convolution whose kernel equals its stride) that feeds the layer.
    #[serde(default)]
    pub token_grid: Option<Vec<i64>>,
}

impl Params {
    pub fn post(&self) -> Post {
        Post {
            resize: self.resize.clone(),
            resize_mode: self.resize_mode,
            smooth: self.smooth,
        }
    }
}

/// One layer saliency method: its description and how it combines G and A (`[B, C, ...]`)
/// into `[B, 1, ...]`.
pub struct LayerSaliency {
    pub id: &'static str,
    pub title: &'static str,
    pub summary: &'static str,
    pub reference: &'static str,
    pub combine: fn(&Tensor, &Tensor) -> Tensor,
}

impl Method for LayerSaliency {
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
        ensure_spatial(&activation, &p.layer)?;
        let acc = accumulation(grad.kind());
        let (grad, activation) = (grad.to_kind(acc), activation.to_kind(acc));
        let map = p
            .post()
            .apply(&(self.combine)(&grad, &activation), inputs)?;
        Ok(Attribution::new(map.detach().to_kind(inputs.kind())))
    }
}

/// A layer map needs the layer's spatial dimensions.
pub fn ensure_spatial(activation: &Tensor, layer: &str) -> Result<()> {
    ensure!(
        (4..=5).contains(&activation.dim()),
        "TorchRay's layer methods need a 2D or 3D convolutional layer, but layer `{layer}` \
         gives shape {:?}; pick one with spatial dimensions (`esegeta layers MODEL --input X` \
         lists them with shapes)",
        activation.size()
    );
    Ok(())
}

/// The spatial dimensions of `[B, C, ...]`.
fn spatial(t: &Tensor) -> Vec<i64> {
    (2..t.dim() as i64).collect()
}

/// Grad-CAM: `ReLU(sum over channels of mean_spatial(G)_c * A_c)`.
fn grad_cam(grad: &Tensor, activation: &Tensor) -> Tensor {
    let weights = grad.mean_dim(spatial(grad).as_slice(), true, accumulation(grad.kind()));
    (weights * activation)
        .sum_dim_intlist(1, true, accumulation(grad.kind()))
        .relu()
}

/// The linear approximation: `sum over channels of G_c * A_c`, the first-order Taylor term
/// of the score in the layer's output, position by position.
fn linear_approx(grad: &Tensor, activation: &Tensor) -> Tensor {
    (grad * activation).sum_dim_intlist(1, true, accumulation(grad.kind()))
}

esegeta_plugin_api::register_method!(LayerSaliency {
    id: "torchray.grad_cam",
    title: "Grad-CAM (TorchRay)",
    summary: "A layer's output weighted per channel by the spatial mean of the target score's \
              gradient, summed over channels and rectified, as TorchRay computes it.",
    reference: "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via \
                Gradient-based Localization, ICCV 2017; TorchRay torchray.attribution.grad_cam",
    combine: grad_cam,
});

esegeta_plugin_api::register_method!(LayerSaliency {
    id: "torchray.linear_approx",
    title: "Linear approximation (TorchRay)",
    summary: "A layer's output times the target score's gradient, summed over channels: the \
              score's first-order approximation in the layer, position by position.",
    reference: "Fong, Patrick and Vedaldi, Understanding Deep Networks via Extremal \
                Perturbations and Smooth Masks, ICCV 2019 (its baselines); TorchRay \
                torchray.attribution.linear_approx",
    combine: linear_approx,
});
