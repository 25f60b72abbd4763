//! Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional
//! Neural Networks", CVPR workshops 2020), as pytorch-grad-cam 1.5's `ScoreCAM`: each channel
//! of a layer's output, resampled to the input's grid (`align_corners=True`) and scaled to
//! [0, 1], masks the input; the target scores of the K masked inputs, through a softmax over
//! the channels, weigh the channels, and the map is `ReLU(sum_k w_k A_k)` on the layer's grid,
//! `[B, 1, ...layer spatial dims]`. No gradients: K forward passes per example.
//!
//! pytorch-grad-cam then scales each map to [0, 1] and resizes it with OpenCV for display;
//! here the map keeps its values (as Captum's LayerGradCam does), and `upsample_to_input`
//! resamples it with PyTorch. pytorch-grad-cam handles 2D layers only; 3D layers take the
//! same steps with trilinear resampling.

use anyhow::{ensure, Context as _, Result};
use esegeta_plugin_api::maps::resample_to_input;
use esegeta_plugin_api::{
    accumulation, register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
    Pass, Tap,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it): a convolutional layer with the input's spatial dimensions, usually the last.
    pub layer: String,
    /// Masked inputs evaluated together in one forward pass.
    /// Default: as many as the memory budget allows (pytorch-grad-cam's is 16; the map is
    /// the same).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub perturbations_per_eval: Option<usize>,
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

pub struct ScoreCam;

impl Method for ScoreCam {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "cnnvis.score_cam",
            title: "Score-CAM",
            summary: "A layer's channels weighted by the target score of the input masked with \
                      each of them (softmax over channels); no gradients.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                layers: true,
                ..Needs::default()
            },
            reference: "Wang et al., Score-CAM: Score-Weighted Visual Explanations for \
                        Convolutional Neural Networks, CVPR Workshops 2020; pytorch-grad-cam \
                        ScoreCAM, https://github.com/jacobgil/pytorch-grad-cam",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        if let Some(n) = p.perturbations_per_eval {
            ensure!(
                n >= 1,
                "perturbations_per_eval must be at least 1 (it is {n})"
            );
        }
        let tap = Tap::capture(&p.layer);
        let activation = ctx.spatial_layer_value(inputs, tap, p.token_grid.as_deref())?;
        let per_eval = p
            .perturbations_per_eval
            .unwrap_or_else(|| ctx.examples_per_pass(&inputs.narrow(0, 0, 1), Pass::Forward));
        let batch = inputs.size()[0];
        let mut maps = Vec::with_capacity(batch as usize);
        for e in 0..batch {
            let x = inputs.narrow(0, e, 1);
            let masks = channel_masks(&activation.narrow(0, e, 1), &x, &p.layer)?;
            let scores = masked_scores(ctx, &x.get(0), &masks.get(0), target, per_eval)?;
            let weights = scores.softmax(0, accumulation(scores.kind()));
            let a = activation.get(e).to_kind(accumulation(activation.kind()));
            let mut shape = vec![-1i64];
            shape.extend(std::iter::repeat_n(1, a.dim() - 1));
            let cam = (&a * weights.view(shape.as_slice())).sum_dim_intlist(
                0,
                true,
                accumulation(a.kind()),
            );
            maps.push(cam.relu().unsqueeze(0));
        }
        let map = Tensor::f_cat(&maps, 0)?;
        let map = if p.upsample_to_input {
            resample_to_input(&map, inputs, &p.layer, false)?
        } else {
            map
        };
        Ok(Attribution::new(map.to_kind(inputs.kind())))
    }
}

register_method!(ScoreCam);

/// Each channel of `activation` (`[B, K, ...]`) on the input's grid, scaled to [0, 1] per
/// example and channel (a constant channel becomes 0): `[B, K, ...input spatial dims]`.
fn channel_masks(activation: &Tensor, inputs: &Tensor, layer: &str) -> Result<Tensor> {
    let acc = accumulation(activation.kind());
    let resampled = resample_to_input(&activation.to_kind(acc), inputs, layer, true)
        .context("Score-CAM masks the input with the layer's channels")?;
    let flat = resampled.flatten(2, -1);
    let (lo, hi) = (flat.amin(&[2i64][..], true), flat.amax(&[2i64][..], true));
    // pytorch-grad-cam's guard against a constant channel.
    let scaled = (&flat - &lo) / (hi - &lo + 1e-8);
    Ok(scaled.view_as(&resampled))
}

/// Target scores `[K]` of one example `x` (`[C, ...]`) masked by each of `masks` (`[K, ...]`),
/// `per_eval` masked inputs per forward pass.
fn masked_scores(
    ctx: &Context<'_>,
    x: &Tensor,
    masks: &Tensor,
    target: i64,
    per_eval: usize,
) -> Result<Tensor> {
    let channels = masks.size()[0];
    let mut scores = Vec::new();
    for start in (0..channels).step_by(per_eval.max(1)) {
        ctx.check_cancelled()?;
        let n = (channels - start).min(per_eval as i64);
        // [n, 1, ...] masks over [1, C, ...]: every input channel takes the same mask.
        let masked = x.unsqueeze(0) * masks.narrow(0, start, n).unsqueeze(1).to_kind(x.kind());
        scores.push(
            ctx.evaluate(&masked, target)?
                .to_kind(accumulation(x.kind())),
        );
    }
    Ok(Tensor::f_cat(&scores, 0)?.view([-1]))
}
