//! NeuronGradient: the gradient of one neuron of a layer with respect to the input, as
//! Captum's `NeuronGradient`.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::neuron::{Neuron, Selector};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`--layer` sets it).
    pub layer: String,
    /// The neuron's index in the layer's output without the batch dimension (`[channel, y, x]`
    /// for a 2D convolution; an integer for a flat layer).
    pub neuron_selector: Selector,
    /// Select the neuron in the layer's input instead of its output.
    #[serde(default)]
    pub attribute_to_neuron_input: bool,
}

pub struct NeuronGradient;

impl Method for NeuronGradient {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.neuron_gradient",
            title: "Neuron Gradient",
            summary: "The gradient of one neuron of a layer with respect to the input.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Captum documentation, NeuronGradient, \
                        https://captum.ai/api/neuron.html#neuron-gradient",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let neuron = Neuron {
            layer: &p.layer,
            selector: &p.neuron_selector,
            at_input: p.attribute_to_neuron_input,
        };
        Ok(Attribution::new(neuron.gradient(ctx, inputs)?))
    }
}

register_method!(NeuronGradient);
