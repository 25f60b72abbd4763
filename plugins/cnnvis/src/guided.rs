//! Guided backpropagation as CNN-visualisations applies it (Springenberg et al., 2015): its
//! `GuidedBackprop` hooks every `nn.ReLU` so that a negative gradient stops there, which is the
//! host's `guided_backprop` rule on the graph's Relu nodes (other activations pass plain
//! gradients, as with Captum's hooks).

use anyhow::Result;
use esegeta_plugin_api::{Context, Tap};
use serde_json::{json, Value};
use tch::Tensor;

/// The composite: the guided rule on every Relu node, plain gradients elsewhere.
fn composite() -> Value {
    json!({"rules": [{"ops": ["Relu"], "rule": {"name": "guided_backprop"}}]})
}

/// The guided gradient of the `target` score at the input.
pub fn of_target(ctx: &Context<'_>, inputs: &Tensor, target: i64) -> Result<Tensor> {
    Ok(ctx
        .backward_rules(inputs, target, &composite(), None)?
        .inputs)
}

/// The guided gradient at the input of a function of `tap`'s value whose gradient there is
/// `seed`.
pub fn of_layer(ctx: &Context<'_>, inputs: &Tensor, tap: Tap<'_>, seed: &Tensor) -> Result<Tensor> {
    Ok(ctx
        .backward_rules_from(inputs, &composite(), tap, seed)?
        .inputs)
}
