//! DeepLift (Shrikumar et al., 2017) with the rescale rule, as Captum 0.9 computes it: inputs
//! and baselines run as one batch `[inputs; baselines]`; ReLU, ELU, LeakyReLU, sigmoid, tanh
//! and softplus nodes take the rescale rule, max-pools and softmaxes their DeepLift rules,
//! every other node its gradient; the attribution is `(input - baseline) * multiplier`.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Tap,
    TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use tch::Tensor;

use crate::integrated_gradients::convergence_delta;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The reference: a number for every element, or a tensor file that broadcasts to the
    /// input (default 0).
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// Multiply the multipliers by `(input - baseline)` (Captum's default); false returns the
    /// multipliers themselves.
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Below this `|Δx|` the rescale rule falls back to the gradient.
    #[serde(default = "default_eps")]
    #[schemars(range(min = 0.0))]
    pub eps: f64,
}

pub(crate) fn default_eps() -> f64 {
    1e-10
}

pub struct DeepLift;

impl Method for DeepLift {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.deeplift",
            title: "DeepLift",
            summary: "Contributions of each input's difference from a baseline, propagated back with DeepLift's rescale rule.",
            kind: MethodKind::Attribution,
            needs: Needs { gradients: true, backward_rules: true, ..Needs::default() },
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
        let pass = deeplift_pass(ctx, inputs, &baselines, target, p.eps, None)?;
        let map = if p.multiply_by_inputs {
            (inputs - &baselines) * &pass.multipliers
        } else {
            pass.multipliers
        };
        let delta = convergence_delta(ctx, &map, inputs, &baselines, target)?;
        Ok(Attribution::new(map).with_extra("convergence_delta", json!(delta)))
    }
}

register_method!(DeepLift);

/// The multipliers of one DeepLift pass over the pairs (input i, baseline i).
pub(crate) struct DeepLiftPass {
    /// At the input, for the inputs' half.
    pub multipliers: Tensor,
    /// At the layer, when one was asked for: multipliers, and the layer's output at the inputs
    /// and at the baselines.
    pub layer: Option<(Tensor, Tensor, Tensor)>,
}

pub(crate) fn deeplift_pass(
    ctx: &Context<'_>,
    inputs: &Tensor,
    baselines: &Tensor,
    target: i64,
    eps: f64,
    layer: Option<Tap<'_>>,
) -> Result<DeepLiftPass> {
    let batch = inputs.size()[0];
    let paired = Tensor::cat(&[inputs, baselines], 0);
    let out = ctx.backward_rules(&paired, target, &rescale_composite(eps), layer)?;
    let layer = match (out.layer, out.layer_output) {
        (Some(g), Some(a)) => Some((
            g.narrow(0, 0, batch),
            a.narrow(0, 0, batch),
            a.narrow(0, batch, batch),
        )),
        _ => None,
    };
    Ok(DeepLiftPass {
        multipliers: out.inputs.narrow(0, 0, batch),
        layer,
    })
}

/// Captum's DeepLift rules by ONNX op type.
fn rescale_composite(eps: f64) -> Value {
    json!({"rules": [
        {"ops": ["Relu", "Elu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus"],
         "rule": {"name": "rescale", "eps": eps}},
        {"ops": ["MaxPool"], "rule": {"name": "rescale_max_pool", "eps": eps}},
        {"ops": ["Softmax"], "rule": {"name": "rescale_softmax", "eps": eps}},
    ]})
}
