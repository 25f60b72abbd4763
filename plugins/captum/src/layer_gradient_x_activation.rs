//! LayerGradientXActivation: a layer's output times the gradient of the target score with
//! respect to it, as Captum's `LayerGradientXActivation`.

use crate::layer_params::capture;
use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it).
    pub layer: String,
    /// Multiply the gradient by the layer's output (Captum's default); `false` gives the
    /// layer gradient alone.
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Attribute to the layer's input (the value its first node reads) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

pub struct LayerGradientXActivation;

impl Method for LayerGradientXActivation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_gradient_x_activation",
            title: "Layer Gradient x Activation",
            summary: "A layer's output times the gradient of the target score with respect to it.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Captum documentation, LayerGradientXActivation, \
                        https://captum.ai/api/layer.html#layer-gradient-x-activation",
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
        let (grad, activation) = ctx.tap_gradient(inputs, target, tap)?;
        let map = if p.multiply_by_inputs {
            grad * activation
        } else {
            grad
        };
        Ok(Attribution::new(map.detach()))
    }
}

register_method!(LayerGradientXActivation);
