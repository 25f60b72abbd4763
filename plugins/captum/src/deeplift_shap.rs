//! DeepLiftShap (Lundberg and Lee, 2017): DeepLift against each baseline of a distribution,
//! averaged over the baselines, as Captum 0.9 computes it.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tch::Tensor;

use crate::baselines::{mean_per_input, pair_all, shap_distribution};
use crate::deeplift::{deeplift_pass, default_eps};
use crate::integrated_gradients::convergence_delta;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A tensor file of N > 1 reference examples `[N, ...]`, each shaped like one input example.
    pub baselines: String,
    /// Multiply the multipliers by `(input - baseline)` (Captum's default).
    #[serde(default = "crate::yes")]
    pub multiply_by_inputs: bool,
    /// Below this `|Δx|` the rescale rule falls back to the gradient.
    #[serde(default = "default_eps")]
    #[schemars(range(min = 0.0))]
    pub eps: f64,
}

pub struct DeepLiftShap;

impl Method for DeepLiftShap {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.deeplift_shap",
            title: "DeepLiftShap",
            summary: "DeepLift against every baseline of a distribution, averaged: an approximation of SHAP values.",
            kind: MethodKind::Attribution,
            needs: Needs { gradients: true, backward_rules: true, ..Needs::default() },
            reference: "Lundberg and Lee, A Unified Approach to Interpreting Model Predictions, NeurIPS 2017",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let baselines =
            shap_distribution(ctx, &p.baselines, inputs, "DeepLiftShap", "captum.deeplift")?;
        let n = baselines.size()[0];
        let (x, b) = pair_all(inputs, &baselines);
        let pass = deeplift_pass(ctx, &x, &b, target, p.eps, None)?;
        let per_pair = if p.multiply_by_inputs {
            (&x - &b) * &pass.multipliers
        } else {
            pass.multipliers
        };
        let delta = convergence_delta(ctx, &per_pair, &x, &b, target)?;
        Ok(Attribution::new(mean_per_input(&per_pair, n))
            .with_extra("convergence_delta", json!(delta)))
    }
}

register_method!(DeepLiftShap);
