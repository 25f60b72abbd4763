//! LayerDeepLift: DeepLift's contributions of a layer's output (its difference between the
//! input and the baseline, times the rescale-rule multipliers at that layer), as Captum 0.9
//! computes them.

use anyhow::{Context as _, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
    TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tch::Tensor;

use crate::deeplift::{deeplift_pass, default_eps};
use crate::integrated_gradients::convergence_delta;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer (module path, e.g. `enc.conv`) whose output is attributed.
    pub layer: String,
    /// The reference input: a number for every element, or a tensor file that broadcasts to
    /// the input (default 0).
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// Multiply the multipliers by the layer's `(output - output at baseline)` (Captum's default).
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Attribute to the layer's input instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

pub struct LayerDeepLift;

impl Method for LayerDeepLift {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_deeplift",
            title: "Layer DeepLift",
            summary: "DeepLift's contributions of a layer's output to the target score.",
            kind: MethodKind::LayerAttribution,
            needs: Needs { gradients: true, layers: true, backward_rules: true },
            reference: "Shrikumar et al., Learning Important Features Through Propagating Activation Differences, ICML 2017",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let tap = Tap::capture(&p.layer).at_input(p.attribute_to_layer_input);
        let map = layer_contributions(ctx, inputs, &baselines, target, tap, p.multiply_by_inputs)?;
        let delta = convergence_delta(ctx, &map, inputs, &baselines, target)?;
        Ok(Attribution::new(map).with_extra("convergence_delta", json!(delta)))
    }
}

register_method!(LayerDeepLift);

/// Per pair (input i, baseline i): the multipliers at the tapped layer value, times its
/// difference when `multiply_by_inputs` (Captum's DeepLift eps, 1e-10).
pub(crate) fn layer_contributions(
    ctx: &Context<'_>,
    inputs: &Tensor,
    baselines: &Tensor,
    target: i64,
    tap: Tap<'_>,
    multiply_by_inputs: bool,
) -> Result<Tensor> {
    let pass = deeplift_pass(ctx, inputs, baselines, target, default_eps(), Some(tap))?;
    let (multipliers, at_inputs, at_baselines) = pass
        .layer
        .with_context(|| format!("the host returned no relevance for layer `{}`", tap.layer))?;
    Ok(if multiply_by_inputs {
        (at_inputs - at_baselines) * multipliers
    } else {
        multipliers
    })
}
