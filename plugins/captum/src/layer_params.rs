//! What every layer method shares about its `layer`: the checks on where the attribution is
//! taken (the layer's output; its input is not tapped) and the sentence that documents it.

use anyhow::{bail, Result};

/// Captum's `attribute_to_layer_input`: taps give a layer's output only, so `true` is refused
/// with the way round it.
pub(crate) fn layer_output_only(attribute_to_layer_input: bool, layer: &str) -> Result<()> {
    if attribute_to_layer_input {
        bail!(
            "attribute_to_layer_input is not supported: esegeta taps the output of layer \
             `{layer}`, not its input; name the layer that feeds `{layer}` instead (`esegeta \
             layers MODEL` lists them in execution order) and leave attribute_to_layer_input \
             false"
        );
    }
    Ok(())
}
