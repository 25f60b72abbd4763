//! The `background` of shap's gradient and deep explainers: a file of reference examples
//! `[N, ...]`, each shaped like one input example, checked before any model evaluation so that
//! a wrong file is refused by name rather than failing inside the model.

use anyhow::{anyhow, bail, Result};
use esegeta_plugin_api::Context;
use tch::Tensor;

/// The background examples of `path`, in the input's kind and on its device.
pub fn load(ctx: &Context<'_>, path: &str, inputs: &Tensor, method: &str) -> Result<Tensor> {
    let data = ctx
        .load_tensor(path)
        .map_err(|e| anyhow!("background: {e:#}"))?;
    let example = &inputs.size()[1..];
    let size = data.size();
    // One example without its batch dimension is taken as a background of one.
    let data = if size.as_slice() == example {
        data.unsqueeze(0)
    } else {
        data
    };
    let size = data.size();
    if size.len() != example.len() + 1 || &size[1..] != example {
        bail!(
            "background: {path} has shape {size:?}, but {method} needs examples [N, {}] shaped \
             like one input example (the input has shape {:?}); give a file of N reference \
             examples stacked on a first dimension",
            join(example),
            inputs.size()
        );
    }
    if size[0] == 0 {
        bail!("background: {path} holds no examples (shape {size:?}); {method} needs at least one");
    }
    Ok(data.to_kind(inputs.kind()).to_device(inputs.device()))
}

fn join(dims: &[i64]) -> String {
    dims.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
