//! NeuronConductance (Dhamdhere et al., 2018): how much of the target score's Integrated
//! Gradients flows through one neuron of a layer, per input element, as Captum's
//! `NeuronConductance`: along the path from the baseline, the target's gradient at the neuron
//! times the neuron's gradient at the input, integrated (Riemann trapezoid by default) and
//! multiplied by `(input - baseline)`.

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
    /// Number of points on the path.
    #[serde(default = "default_n_steps")]
    #[schemars(range(min = 1))]
    pub n_steps: usize,
    /// The quadrature rule (Captum's default here: `riemann_trapezoid`).
    #[serde(default = "trapezoid")]
    pub method: Rule,
    /// Path points evaluated together (times the batch size); default: as many as the memory
    /// budget allows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub internal_batch_size: Option<usize>,
    /// Multiply by `(input - baseline)` (Captum's default).
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Select the neuron in the layer's input instead of its output.
    #[serde(default)]
    pub attribute_to_neuron_input: bool,
}

fn trapezoid() -> Rule {
    Rule::RiemannTrapezoid
}

pub struct NeuronConductance;

impl Method for NeuronConductance {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.neuron_conductance",
            title: "Neuron Conductance",
            summary: "The share of the target score's Integrated Gradients that flows through \
                      one neuron of a layer, per input element.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Dhamdhere, Sundararajan & Yan, How Important Is a Neuron?, ICLR 2019; \
                        Captum documentation, NeuronConductance",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let path = Path::new(p.method, p.n_steps, p.internal_batch_size)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let neuron = Neuron {
            layer: &p.layer,
            selector: &p.neuron_selector,
            at_input: p.attribute_to_neuron_input,
        };
        // d target / d neuron, times d neuron / d input, at each path point.
        let gradient = |points: &Tensor| -> Result<Tensor> {
            let through = neuron.gradient(ctx, points)?;
            let (at_layer, _) = ctx.tap_gradient(points, target, neuron.tap())?;
            let mut shape = vec![1i64; through.dim()];
            shape[0] = -1;
            Ok(through * neuron.pick(&at_layer)?.view(shape.as_slice()))
        };
        let map = path.attribute(ctx, inputs, &baselines, p.multiply_by_inputs, &gradient)?;
        Ok(Attribution::new(map))
    }
}

register_method!(NeuronConductance);
