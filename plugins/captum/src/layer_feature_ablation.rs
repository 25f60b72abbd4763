//! LayerFeatureAblation as Captum's `LayerFeatureAblation`: feature ablation on a layer's
//! output. Each feature of the layer's output (a unit, or a group sharing a `layer_mask` label)
//! is replaced by `layer_baselines` in turn while the model runs on the input, and gets the
//! drop in the target score.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
    TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::layer_params::{capture, layer_value};
use crate::layer_path::repeat_copies;
use crate::perturbation::{ablate_with, per_eval, FeatureMask, Perturbed, Weighting};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it).
    pub layer: String,
    /// What ablated units of the layer's output are replaced with: a number, or a file with a
    /// tensor that broadcasts to the layer's output. Default 0.
    #[serde(default)]
    pub layer_baselines: TensorOrScalar,
    /// A file of integer labels grouping the units of the layer's output into features that
    /// are ablated together. Its shape is the layer output's, or broadcasts to it (a batch
    /// dimension of 1, or none, shares it across examples). Default: every unit is its own
    /// feature.
    #[serde(default)]
    pub layer_mask: Option<String>,
    /// Features ablated together in one forward pass.
    /// Default: as many as the memory budget allows (Captum's is 1). The map equals the
    /// unbatched one up to float rounding, except through a segmentation wrapper whose
    /// dynamic mask is near-tied (an argmax gap around 1e-6): batched kernels can flip a few
    /// masked voxels there, so give 1, or a fixed mask (`--fixed-mask`, `mask_mode: fixed`),
    /// to reproduce Captum exactly.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub perturbations_per_eval: Option<usize>,
    /// Ablate the layer's input (the value its first node reads, replaced for the layer's own
    /// nodes only) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

pub struct LayerFeatureAblation;

impl Method for LayerFeatureAblation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_feature_ablation",
            title: "Layer Feature Ablation",
            summary: "Drop in the target score when each unit (or labelled group) of a layer's \
                      output is replaced by a baseline.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                layers: true,
                ..Needs::default()
            },
            reference: "Captum documentation, LayerFeatureAblation, \
                        https://captum.ai/api/layer.html#layer-feature-ablation",
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
        let output = layer_value(ctx, inputs, tap)?;
        let side = if tap.at_input { "input" } else { "output" };
        let what = format!("the {side} of layer `{}`", p.layer);
        let features =
            FeatureMask::over(ctx, "layer_mask", p.layer_mask.as_deref(), &output, &what)?;
        let baselines = p.layer_baselines.resolve(ctx, "layer_baselines", &output)?;
        let ids = features.features();
        let scores = |copies: &[&Tensor]| with_layer(ctx, inputs, target, tap, copies);
        let map = ablate_with(
            ctx,
            &output,
            ids.len(),
            per_eval(ctx, p.perturbations_per_eval, inputs)?,
            Weighting::Sum,
            scores,
            |i| {
                let mask = features.select(ids[i]);
                Ok(Perturbed {
                    input: baselines.where_self(&mask, &output),
                    mask,
                })
            },
        )?;
        Ok(Attribution::new(map))
    }
}

register_method!(LayerFeatureAblation);

/// Target scores `[k, B]` of the model on `inputs` with the tapped value replaced by each
/// of `k` values in turn (one forward pass over the copies).
fn with_layer(
    ctx: &Context<'_>,
    inputs: &Tensor,
    target: i64,
    tap: Tap<'_>,
    values: &[&Tensor],
) -> Result<Tensor> {
    let k = values.len() as i64;
    let batch = inputs.size()[0];
    let replaced = Tensor::f_cat(values, 0)?;
    let copies = repeat_copies(inputs, k);
    let (scores, _) = tch::no_grad(|| {
        let replace = Tap::replace(tap.layer, &replaced).at_input(tap.at_input);
        ctx.target_scores_taps(&copies, target, &[replace])
    })?;
    ensure!(
        scores.numel() as i64 == k * batch,
        "the model returned {} scores for {} examples; layer ablation needs one score per example",
        scores.numel(),
        k * batch
    );
    Ok(scores.reshape([k, batch]).to_device(inputs.device()))
}
