//! LayerActivation: a layer's output for the input, as Captum's `LayerActivation`.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::layer_params::{capture, layer_value};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it).
    pub layer: String,
    /// Attribute to the layer's input (the value its first node reads) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

pub struct LayerActivation;

impl Method for LayerActivation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.layer_activation",
            title: "Layer Activation",
            summary: "The output of a layer for the input.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                layers: true,
                ..Needs::default()
            },
            reference: "Captum documentation, LayerActivation, \
                        https://captum.ai/api/layer.html#layer-activation",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let tap = capture(&p.layer, p.attribute_to_layer_input);
        Ok(Attribution::new(layer_value(ctx, inputs, tap)?))
    }
}

register_method!(LayerActivation);
