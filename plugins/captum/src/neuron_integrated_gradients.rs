//! NeuronIntegratedGradients: Integrated Gradients of one neuron of a layer instead of the
//! target score, as Captum's `NeuronIntegratedGradients` (same quadrature rules and defaults).

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::integrated_gradients::{default_n_steps, Path, Rule};
use crate::neuron::{Neuron, Selector};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`--layer` sets it).
    pub layer: String,
    /// The neuron's index in the layer's output without the batch dimension (`[channel, y, x]`
    /// for a 2D convolution; an integer for a flat layer).
    pub neuron_selector: Selector,
    /// The starting point of the path: a number, or a tensor file that broadcasts to the
    /// input (default 0).
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// Number of points on the path (Riemann rules need at least 2).
    #[serde(default = "default_n_steps")]
    #[schemars(range(min = 1))]
    pub n_steps: usize,
    /// The quadrature rule.
    #[serde(default)]
    pub method: Rule,
    /// Path points evaluated together (times the batch size); default: as many as the memory
    /// budget allows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub internal_batch_size: Option<usize>,
    /// Multiply the integrated gradients by `(input - baseline)` (Captum's default).
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Select the neuron in the layer's input instead of its output.
    #[serde(default)]
    pub attribute_to_neuron_input: bool,
}

pub struct NeuronIntegratedGradients;

impl Method for NeuronIntegratedGradients {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.neuron_integrated_gradients",
            title: "Neuron Integrated Gradients",
            summary: "Integrated Gradients of one neuron of a layer: its gradient integrated \
                      along the path from a baseline to the input, times (input - baseline).",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017; \
                        Captum documentation, NeuronIntegratedGradients",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let path = Path::new(p.method, p.n_steps, p.internal_batch_size)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let neuron = Neuron {
            layer: &p.layer,
            selector: &p.neuron_selector,
            at_input: p.attribute_to_neuron_input,
        };
        let gradient = |points: &Tensor| neuron.gradient(ctx, points);
        let map = path.attribute(ctx, inputs, &baselines, p.multiply_by_inputs, &gradient)?;
        Ok(Attribution::new(map))
    }
}

register_method!(NeuronIntegratedGradients);
