//! LayerLRP: the relevance that Layer-wise Relevance Propagation brings to a layer's output
//! (or input), as Captum's `LayerLRP`: the same rules as `captum.lrp`, the relevance scaled by
//! the target score.

use anyhow::{Context as _, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tch::Tensor;

use crate::layer_params::capture;
use crate::lrp::{captum_rules, scaled_by_score, Assignment};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`--layer` sets it).
    pub layer: String,
    /// Rules for nodes by ONNX op type and/or layer name, as `captum.lrp`'s. Default:
    /// Captum's.
    #[serde(default)]
    pub rules: Option<Vec<Assignment>>,
    /// The relevance at the layer's input (what its first node reads) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

pub struct LayerLrp;

impl Method for LayerLrp {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_lrp",
            title: "Layer LRP",
            summary: "The relevance that layer-wise relevance propagation of the target score \
                      brings to a layer.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                backward_rules: true,
                ..Needs::default()
            },
            reference: "Bach et al., On Pixel-Wise Explanations for Non-Linear Classifier \
                        Decisions by Layer-Wise Relevance Propagation, PLoS ONE 2015; Captum \
                        documentation, LayerLRP",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let composite = json!({ "rules": p.rules.unwrap_or_else(captum_rules) });
        let tap = capture(&p.layer, p.attribute_to_layer_input);
        let relevance = ctx
            .backward_rules(inputs, target, &composite, Some(tap))?
            .layer
            .with_context(|| format!("no relevance reached layer `{}`", p.layer))?;
        let score = ctx.evaluate(inputs, target)?;
        scaled_by_score(&relevance, &score)
    }
}

register_method!(LayerLrp);
