//! What every metric takes: the attribution method to evaluate and its parameters, and the
//! map that method gives through the host.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{Context, MethodKind, MethodMeta, Needs, Pass};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tch::Tensor;

/// The method a metric scores, as the metric's `explained` parameter.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Explained {
    /// The attribution method to evaluate, e.g. `captum.saliency`.
    pub method: String,
    /// Its parameters (Captum's keyword names).
    #[serde(default = "empty_object")]
    pub params: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl Explained {
    /// The method's map of `inputs` for `target`, with the input's shape.
    pub fn map(&self, ctx: &Context<'_>, inputs: &Tensor, target: i64) -> Result<Tensor> {
        let map = ctx.explain(&self.method, &self.params, inputs, target)?.map;
        ensure!(
            map.size() == inputs.size(),
            "{} gave a map of shape {:?} for an input of shape {:?}; this metric needs a map \
             over the input (an attribution method, not a layer method)",
            self.method,
            map.size(),
            inputs.size()
        );
        Ok(map.detach())
    }
}

/// The facts shared by every metric's `MethodMeta`.
pub fn meta(
    id: &'static str,
    title: &'static str,
    summary: &'static str,
    reference: &'static str,
) -> MethodMeta {
    MethodMeta {
        id,
        title,
        summary,
        kind: MethodKind::Metric,
        needs: Needs::default(),
        reference,
    }
}

/// Perturbations per example evaluated together: Captum's `max_examples_per_batch // batch`,
/// clamped to `1..=n`, or what the memory budget allows for the metric's `pass` over them.
pub(crate) fn samples_per_batch(
    ctx: &Context<'_>,
    inputs: &Tensor,
    n: usize,
    max_examples_per_batch: Option<usize>,
    pass: Pass,
) -> usize {
    let batch = inputs.size()[0].max(1) as usize;
    let examples = max_examples_per_batch.unwrap_or_else(|| ctx.examples_per_pass(inputs, pass));
    (examples / batch).clamp(1, n.max(1))
}
