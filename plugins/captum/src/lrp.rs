//! Layer-wise Relevance Propagation (Bach et al., 2015), as Captum 0.9 computes it: the target
//! score's relevance propagated back with a z-rule on every linear node (ε = 1e-9 by default,
//! on convolutions, linear layers, pooling and batch norm) and passed unchanged through ReLU,
//! dropout and tanh; the result is scaled by the target score. Rules can be chosen per layer
//! type or layer name (composites), with Captum's LRP-ε, LRP-γ and LRP-α1β0, and zennit's
//! LRP-αβ, z⁺ and z^B.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Kind, Tensor};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Rules for nodes by ONNX op type and/or layer name; the first matching entry wins and
    /// nodes no entry matches take the plain gradient. Default: Captum's (LRP-ε with
    /// ε = 1e-9 on Conv, Gemm, MatMul, pooling and BatchNormalization; pass-through on Relu,
    /// Dropout and Tanh).
    #[serde(default)]
    pub rules: Option<Vec<Assignment>>,
}

/// One entry of a composite.
#[derive(Deserialize, Serialize, JsonSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// ONNX op types (`Conv`, `Gemm`, ...); empty: any.
    #[serde(default)]
    pub ops: Vec<String>,
    /// Layer names (module paths); a node inside a named block matches too; empty: any.
    #[serde(default)]
    pub layers: Vec<String>,
    pub rule: LrpRule,
}

/// The propagation rules, with Captum's parameter names and defaults.
#[derive(Deserialize, Serialize, JsonSchema, Clone)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrpRule {
    Epsilon {
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
    Gamma {
        #[serde(default = "default_gamma")]
        gamma: f64,
        #[serde(default)]
        set_bias_to_zero: bool,
    },
    Alpha1Beta0 {
        #[serde(default)]
        set_bias_to_zero: bool,
    },
    /// zennit's `AlphaBeta` (not in Captum): positive and negative contributions, inputs split
    /// by sign, weighted `alpha` and `-beta`; `alpha - beta = 1` conserves relevance.
    AlphaBeta {
        alpha: f64,
        beta: f64,
        /// Stabiliser of each denominator.
        #[serde(default = "default_stabiliser")]
        epsilon: f64,
    },
    /// zennit's `ZPlus` (not in Captum): `alpha_beta` with alpha 1 and beta 0.
    ZPlus {
        #[serde(default = "default_stabiliser")]
        epsilon: f64,
    },
    /// zennit's `ZBox` (not in Captum), for the first layer: inputs bounded by `low` and `high`
    /// (the lowest and highest pixel values the model takes).
    ZBox {
        low: f64,
        high: f64,
        #[serde(default = "default_stabiliser")]
        epsilon: f64,
    },
    PassThrough,
}

/// zennit's stabiliser, for the rules from zennit.
fn default_stabiliser() -> f64 {
    1e-6
}

fn default_epsilon() -> f64 {
    1e-9
}

fn default_gamma() -> f64 {
    0.25
}

pub struct Lrp;

impl Method for Lrp {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.lrp",
            title: "Layer-wise Relevance Propagation",
            summary: "The target score redistributed layer by layer onto the input by propagation rules (LRP-ε by default).",
            kind: MethodKind::Attribution,
            needs: Needs { gradients: true, backward_rules: true, ..Needs::default() },
            reference: "Bach et al., On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation, PLoS ONE 2015",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let rules = p.rules.unwrap_or_else(captum_rules);
        let composite = json!({ "rules": rules });
        let normalised = ctx.backward_rules(inputs, target, &composite, None)?.inputs;
        let score = ctx.evaluate(inputs, target)?;
        scaled_by_score(&normalised, &score)
    }
}

register_method!(Lrp);

/// Relevance propagated from 1 at the output, times each example's target `score`, as Captum
/// reports it, with the convergence delta `score - sum(map)`.
pub(crate) fn scaled_by_score(normalised: &Tensor, score: &Tensor) -> Result<Attribution> {
    let mut shape = vec![1i64; normalised.dim()];
    shape[0] = -1;
    let map = normalised * score.view(shape.as_slice());
    let total = map.flatten(1, -1).sum_dim_intlist(1, false, Kind::Double);
    let delta = Vec::<f64>::try_from(score.to_kind(Kind::Double) - total)?;
    Ok(Attribution::new(map).with_extra("convergence_delta", json!(delta)))
}

/// Captum's default: LRP-ε on its rule layers, pass-through on its activations.
pub(crate) fn captum_rules() -> Vec<Assignment> {
    let ops = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
    vec![
        Assignment {
            ops: ops(&[
                "Conv",
                "Gemm",
                "MatMul",
                "MaxPool",
                "AveragePool",
                "GlobalAveragePool",
                "ReduceMean",
                "BatchNormalization",
            ]),
            layers: vec![],
            rule: LrpRule::Epsilon {
                epsilon: default_epsilon(),
            },
        },
        Assignment {
            ops: ops(&["Relu", "Dropout", "Tanh"]),
            layers: vec![],
            rule: LrpRule::PassThrough,
        },
    ]
}
