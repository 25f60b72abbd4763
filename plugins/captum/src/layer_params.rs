//! What every layer method shares about its `layer`: the tap on the layer's output, or on its
//! input with Captum's `attribute_to_layer_input`, and the layer's value there.

use anyhow::Result;
use esegeta_plugin_api::{Context, Tap};
use tch::Tensor;

/// The tap that captures the layer's output, or its input when `at_input`.
pub(crate) fn capture(layer: &str, at_input: bool) -> Tap<'_> {
    Tap::capture(layer).at_input(at_input)
}

/// The layer's output (or input) at `x`, without autograd history.
pub(crate) fn layer_value(ctx: &Context<'_>, x: &Tensor, tap: Tap<'_>) -> Result<Tensor> {
    let mut values = tch::no_grad(|| ctx.layer_values(x, &[tap]))?;
    Ok(values.remove(0).detach())
}
