//! Excitation backprop (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
//! ECCV 2016) and its contrastive form, as TorchRay computes them: the target's marginal
//! winning probability is passed down with the excitation rule on every linear node
//! (convolutions, fully connected layers, average pooling: each output's probability shared
//! among its inputs in proportion to `a_j w⁺_ij`), and the map is the probability arriving at
//! `layer`, summed over channels, `[B, 1, ...layer spatial dims]`, then smoothed and resized.
//!
//! The contrastive form subtracts the probability the target's dual unit sends (the
//! classifier's weights negated) from the target's at `contrast_layer`, passes the difference
//! on down to `layer`, and keeps the positive part of its channel sum. The rule is linear in
//! what it passes down, so the difference passed down equals the difference of the two passes
//! at `layer` (two rule passes), and where `contrast_layer` sits does not change the map, as
//! TorchRay's outputs show too.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    accumulation, register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use tch::Tensor;

use crate::layer_saliency::{ensure_spatial, Params};
use crate::saliency::{Post, Resize, ResizeMode};

/// The ONNX op types whose nodes take the excitation rule; batch norms pass the probability
/// through unchanged, and every other node passes it on as its gradient does (ReLUs, max
/// pooling: to the winner; residual sums: to both branches), as TorchRay does.
const LINEAR_OPS: &[&str] = &["Conv", "Gemm", "MatMul", "AveragePool", "GlobalAveragePool"];

fn composite(contrast_at: Option<&str>) -> Value {
    let mut rules = Vec::new();
    if let Some(layer) = contrast_at {
        rules.push(json!({"layers": [layer], "ops": LINEAR_OPS,
                          "rule": {"name": "excitation_backprop", "contrast": true}}));
    }
    rules.push(json!({"ops": LINEAR_OPS, "rule": {"name": "excitation_backprop"}}));
    rules.push(json!({"ops": ["BatchNormalization"], "rule": {"name": "pass_through"}}));
    json!({ "rules": rules })
}

/// The winning probability at `layer`'s output, `[B, C, ...]`.
fn probability_at(
    ctx: &Context<'_>,
    inputs: &Tensor,
    target: i64,
    layer: &str,
    contrast_at: Option<&str>,
    token_grid: Option<&[i64]>,
) -> Result<Tensor> {
    let tap = Tap::capture(layer);
    let pass = ctx.backward_rules(inputs, target, &composite(contrast_at), Some(tap))?;
    let at_layer = pass.layer.ok_or_else(|| {
        anyhow::anyhow!("the target's score does not depend on layer `{layer}`; pick a layer the model's output comes through")
    })?;
    // A transformer's tokens onto their patch grid (the relevance is shaped like the layer).
    let at_layer = ctx
        .token_layout(inputs, tap, token_grid, &at_layer.size())?
        .apply(&at_layer)?;
    ensure_spatial(&at_layer, layer)?;
    Ok(at_layer.to_kind(accumulation(at_layer.kind())))
}

/// The map from the probability at the layer: summed over channels.
fn to_map(probability: &Tensor) -> Tensor {
    probability.sum_dim_intlist(1, true, accumulation(probability.kind()))
}

pub struct ExcitationBackprop;

impl Method for ExcitationBackprop {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "torchray.excitation_backprop",
            title: "Excitation backprop (TorchRay)",
            summary: "The target's marginal winning probability passed down the network by \
                      the excitation rule, at a layer, summed over channels.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                backward_rules: true,
            },
            reference: "Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV \
                        2016; TorchRay torchray.attribution.excitation_backprop",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let probability =
            probability_at(ctx, inputs, target, &p.layer, None, p.token_grid.as_deref())?;
        let map = p.post().apply(&to_map(&probability), inputs)?;
        Ok(Attribution::new(map.detach().to_kind(inputs.kind())))
    }
}

register_method!(ExcitationBackprop);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContrastiveParams {
    /// The layer of the map (TorchRay's `saliency_layer`), below `contrast_layer`
    /// (`--layer` sets it).
    pub layer: String,
    /// The layer where the dual unit's probability is subtracted from the target's.
    pub contrast_layer: String,
    /// The classifier layer whose weights the dual unit negates. Default: the model's last
    /// layer.
    #[serde(default)]
    pub classifier_layer: Option<String>,
    /// Resample the map from the layer's grid: `true` to the input's, or to the given size.
    #[serde(default)]
    pub resize: Resize,
    /// The resampling of `resize`: `bilinear` (trilinear in 3D), `bicubic` (2D) or `nearest`.
    #[serde(default)]
    pub resize_mode: ResizeMode,
    /// A Gaussian blur of the map after any resizing, with a standard deviation of this
    /// fraction of the map's largest side; 0 (the default): none.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub smooth: f64,
}

pub struct ContrastiveExcitationBackprop;

impl Method for ContrastiveExcitationBackprop {
    type Params = ContrastiveParams;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "torchray.contrastive_excitation_backprop",
            title: "Contrastive excitation backprop (TorchRay)",
            summary: "Excitation backprop's winning probability of the target less that of its \
                      dual unit (the classifier's weights negated), at a layer.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                backward_rules: true,
            },
            reference: "Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV \
                        2016; TorchRay torchray.attribution.excitation_backprop",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: ContrastiveParams,
    ) -> Result<Attribution> {
        let layers = ctx.layers()?;
        let classifier = match &p.classifier_layer {
            Some(l) => l.clone(),
            None => layers.last().cloned().ok_or_else(|| {
                anyhow::anyhow!("the model has no named layers; give classifier_layer")
            })?,
        };
        let order = |name: &str| layers.iter().position(|l| l == name);
        if let (Some(s), Some(c)) = (order(&p.layer), order(&p.contrast_layer)) {
            ensure!(s < c, "layer `{}` must come before contrast_layer `{}`: the contrast is passed down from it", p.layer, p.contrast_layer);
        }
        ensure!(
            order(&p.contrast_layer).is_some(),
            "contrast_layer: the model has no layer `{}` (`esegeta layers MODEL` lists them)",
            p.contrast_layer
        );
        let target_pass = probability_at(ctx, inputs, target, &p.layer, None, None)?;
        let dual_pass = probability_at(ctx, inputs, target, &p.layer, Some(&classifier), None)?;
        let post = Post {
            resize: p.resize,
            resize_mode: p.resize_mode,
            smooth: p.smooth,
        };
        // Only what speaks for the target against its dual is kept (after the channel sum).
        let map = post.apply(&to_map(&(target_pass - dual_pass)).relu(), inputs)?;
        Ok(Attribution::new(map.detach().to_kind(inputs.kind())))
    }
}

register_method!(ContrastiveExcitationBackprop);
