//! NeuronGradientShap: GradientShap of one neuron of a layer instead of the target score, as
//! Captum's `NeuronGradientShap` (expected gradients over random baselines and path points).

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::baselines::distribution_or_constant;
use crate::gradient_shap::{default_n_samples, expected_gradients, Sampling};
use crate::neuron::{Neuron, Selector};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`--layer` sets it).
    pub layer: String,
    /// The neuron's index in the layer's output without the batch dimension (`[channel, y, x]`
    /// for a 2D convolution; an integer for a flat layer).
    pub neuron_selector: Selector,
    /// As `captum.gradient_shap`'s: the baseline distribution, a tensor file `[N, ...]` or a
    /// number.
    pub baselines: TensorOrScalar,
    /// As `captum.gradient_shap`'s.
    #[serde(default = "default_n_samples")]
    #[schemars(range(min = 1))]
    pub n_samples: usize,
    /// As `captum.gradient_shap`'s.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub stdevs: f64,
    /// As `captum.gradient_shap`'s.
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Select the neuron in the layer's input instead of its output.
    #[serde(default)]
    pub attribute_to_neuron_input: bool,
}

pub struct NeuronGradientShap;

impl Method for NeuronGradientShap {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.neuron_gradient_shap",
            title: "Neuron GradientShap",
            summary: "GradientShap of one neuron of a layer: its expected gradient times \
                      (input - baseline) over random baselines and path points.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Lundberg and Lee, A Unified Approach to Interpreting Model Predictions, \
                        NeurIPS 2017; Captum documentation, NeuronGradientShap",
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
        let baselines = distribution_or_constant(ctx, &p.baselines, inputs)?;
        let sampling = Sampling {
            n_samples: p.n_samples,
            stdevs: p.stdevs,
            multiply_by_inputs: p.multiply_by_inputs,
        };
        let gradient = |points: &Tensor| neuron.gradient(ctx, points);
        let map = expected_gradients(ctx, inputs, &baselines, &sampling, &gradient)?;
        Ok(Attribution::new(map))
    }
}

register_method!(NeuronGradientShap);
