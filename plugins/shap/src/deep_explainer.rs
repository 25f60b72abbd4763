//! shap's DeepExplainer for PyTorch (Lundberg and Lee, 2017; DeepLIFT's rescale rule against
//! a background distribution), as shap 0.51 computes it: each input example is paired with
//! every background example, one rule-based backward pass runs over `[x repeated N;
//! background]`, and the attribution is the mean over the background of
//! `multiplier * (x - background)`, the multipliers taken at the background's half as shap
//! takes them. The rules are shap's own, which differ from Captum's DeepLift (host rules
//! `rescale_shap` and `rescale_max_pool_shap`): the gradient a rule sees at its output is the
//! one after its consumers' rules, a max-pool's multiplier is 0 where `|Δx| < 1e-7`, and a
//! softmax takes the elementwise rescale. Needs a graph (ONNX) model for the rules.

use anyhow::{bail, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Pass,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use crate::background;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A tensor file (npy, NIfTI) of N reference examples `[N, ...]`, each shaped like one
    /// input example (shap's `data`); the attribution is averaged over them.
    pub background: String,
    /// Fail when the attributions of an example do not sum to its score minus the mean score
    /// of the background within shap's tolerance 0.01 (shap's `check_additivity`).
    #[serde(default = "yes")]
    pub check_additivity: bool,
    /// Background examples paired with the input in one backward pass. Default: as many as
    /// the memory budget allows (shap pairs them all at once; the map is the same).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_size: Option<usize>,
}

fn yes() -> bool {
    true
}

/// shap's `_check_additivity` tolerance.
const ADDITIVITY_TOLERANCE: f64 = 1e-2;

pub struct DeepExplainer;

impl Method for DeepExplainer {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "shap.deep_explainer",
            title: "DeepExplainer (shap)",
            summary: "DeepLIFT's rescale rule against every example of a background \
                      distribution, averaged: shap's DeepExplainer, with shap's own rules.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                backward_rules: true,
                ..Needs::default()
            },
            reference: "Lundberg and Lee, A Unified Approach to Interpreting Model \
                        Predictions, NeurIPS 2017; shap.DeepExplainer",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let data = background::load(ctx, &p.background, inputs, "DeepExplainer")?;
        let n = data.size()[0];
        // Two examples (the input's copy and a background example) per pair.
        let per_pass = p
            .batch_size
            .unwrap_or_else(|| ctx.examples_per_pass(&inputs.narrow(0, 0, 1), Pass::Gradient) / 2)
            .max(1) as i64;
        let batch = inputs.size()[0];
        let total = (batch * n) as usize;
        let composite = shap_composite();
        let mut maps = Vec::with_capacity(batch as usize);
        for j in 0..batch {
            let x = inputs.narrow(0, j, 1);
            let mut sum = x.zeros_like().to_kind(Kind::Double);
            let mut start = 0;
            while start < n {
                ctx.check_cancelled()?;
                let count = per_pass.min(n - start);
                let refs = data.narrow(0, start, count);
                let tiled = x.expand_as(&refs);
                let joint = Tensor::cat(&[&tiled, &refs], 0);
                let out = ctx.backward_rules(&joint, target, &composite, None)?;
                let multipliers = out.inputs.narrow(0, count, count);
                sum += (multipliers * (&tiled - &refs))
                    .to_kind(Kind::Double)
                    .sum_dim_intlist(0, true, Kind::Double);
                start += count;
                ctx.progress((j * n + start) as usize, total);
            }
            maps.push(sum / n as f64);
        }
        let map = Tensor::cat(&maps, 0);
        let gaps = additivity_gaps(ctx, inputs, &data, &map, target, per_pass)?;
        let worst = gaps.iter().fold(0f64, |m, g| m.max(g.abs()));
        if p.check_additivity && worst >= ADDITIVITY_TOLERANCE {
            bail!(
                "the SHAP values do not sum to the model's output: the largest gap between an \
                 example's score minus the background's mean score and the sum of its \
                 attributions is {worst:e}, above shap's tolerance {ADDITIVITY_TOLERANCE}; an \
                 operation of the model is probably not one DeepLIFT's rules cover (set \
                 \"check_additivity\": false to keep the map anyway)"
            );
        }
        Ok(Attribution::new(map.to_kind(inputs.kind())).with_extra("additivity_gap", json!(gaps)))
    }
}

register_method!(DeepExplainer);

/// Per input example: `f(x) - mean f(background) - sum(attribution)`.
fn additivity_gaps(
    ctx: &Context<'_>,
    inputs: &Tensor,
    data: &Tensor,
    map: &Tensor,
    target: i64,
    per_pass: i64,
) -> Result<Vec<f64>> {
    let n = data.size()[0];
    let mut expected = 0.0;
    let mut start = 0;
    while start < n {
        let count = per_pass.min(n - start);
        let scores = ctx.evaluate(&data.narrow(0, start, count), target)?;
        expected += scores
            .to_kind(Kind::Double)
            .sum(Kind::Double)
            .double_value(&[]);
        start += count;
    }
    expected /= n as f64;
    let scores = ctx.evaluate(inputs, target)?.to_kind(Kind::Double);
    let sums = map
        .to_kind(Kind::Double)
        .flatten(1, -1)
        .sum_dim_intlist(1, false, Kind::Double);
    let gaps = scores - expected - sums;
    Ok(Vec::<f64>::try_from(gaps.to_device(tch::Device::Cpu))?)
}

/// shap's `op_handler` by ONNX op type: `nonlinear_1d` and `maxpool`; every other node (shap's
/// `linear_1d` and `passthrough`, and modules it does not know) takes its plain gradient.
fn shap_composite() -> Value {
    json!({"rules": [
        {"ops": ["Relu", "Elu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus", "Softmax", "Selu",
                 "Gelu"],
         "rule": {"name": "rescale_shap"}},
        {"ops": ["MaxPool"], "rule": {"name": "rescale_max_pool_shap"}},
    ]})
}
