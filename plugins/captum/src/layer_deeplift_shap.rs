//! LayerDeepLiftShap: LayerDeepLift against each baseline of a distribution, averaged over
//! the baselines, as Captum 0.9 computes it.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tch::Tensor;

use crate::baselines::{mean_per_input, pair_all, shap_distribution};
use crate::integrated_gradients::convergence_delta;
use crate::layer_deeplift::layer_contributions;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer (module path, e.g. `enc.conv`) whose output is attributed.
    pub layer: String,
    /// A tensor file of N > 1 reference examples `[N, ...]`, each shaped like one input example.
    pub baselines: String,
    /// Multiply the multipliers by the layer's `(output - output at baseline)` (Captum's default).
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Attribute to the layer's input instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

pub struct LayerDeepLiftShap;

impl Method for LayerDeepLiftShap {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_deeplift_shap",
            title: "Layer DeepLiftShap",
            summary: "Layer DeepLift against every baseline of a distribution, averaged.",
            kind: MethodKind::LayerAttribution,
            needs: Needs { gradients: true, layers: true, backward_rules: true },
            reference: "Lundberg and Lee, A Unified Approach to Interpreting Model Predictions, NeurIPS 2017",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let baselines = shap_distribution(
            ctx,
            &p.baselines,
            inputs,
            "LayerDeepLiftShap",
            "captum.layer_deeplift",
        )?;
        let n = baselines.size()[0];
        let (x, b) = pair_all(inputs, &baselines);
        let tap = Tap::capture(&p.layer).at_input(p.attribute_to_layer_input);
        let per_pair = layer_contributions(ctx, &x, &b, target, tap, p.multiply_by_inputs)?;
        let delta = convergence_delta(ctx, &per_pair, &x, &b, target)?;
        Ok(Attribution::new(mean_per_input(&per_pair, n))
            .with_extra("convergence_delta", json!(delta)))
    }
}

register_method!(LayerDeepLiftShap);
