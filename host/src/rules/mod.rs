//! Backward rules: a backward pass through a graph model in which each node's gradient step
//! may be replaced by a rule (guided backprop, deconvnet, DeepLift's rescale, LRP, ...).
//!
//! A [`Rule`] is one small type in its own file: given a node, the values it saw in the forward
//! pass and the gradients around it, it rewrites the gradient (relevance) at the node's input,
//! exactly where Captum's module hooks act, so that the maps match Captum's. A [`Composite`]
//! says which rule applies to which nodes, by ONNX op type or layer name; the first matching
//! entry wins and unmatched nodes take the plain gradient. The engine (engine.rs) records
//! every node's values during the forward pass and walks the nodes in reverse.

mod chunks;
mod deconvnet;
mod engine;
mod excitation_backprop;
mod guided_backprop;
mod lrp;
mod lrp_alpha1_beta0;
mod lrp_alpha_beta;
mod lrp_epsilon;
mod lrp_gamma;
mod lrp_z_box;
mod pass_through;
mod rescale;
mod rescale_max_pool_shap;
mod rescale_maxpool;
mod rescale_shap;
mod rescale_softmax;

use anyhow::{Context as _, Result};
use serde::Deserialize;
use tch::Tensor;

use crate::model::graph::NodeView;

pub use engine::{activations, backward, RuleOutput, Start};

/// A node's values from the forward pass. Inputs that came from the model's input (not
/// constants) are autograd leaves, so the node's own gradient is one local backward away.
pub struct Recorded {
    pub inputs: Vec<Option<Tensor>>,
    pub outputs: Vec<Tensor>,
    /// On a fixed-batch model run in chunks: the chunks this record joins (its values are
    /// then copies without autograd history; products run on the chunks).
    parts: Option<Box<chunks::Parts>>,
}

impl Recorded {
    /// The plain vector-Jacobian product of the node: gradients of its leaf inputs given
    /// `grad_outputs` (None for inputs that are constants or do not depend on the outputs).
    pub fn vjp(&self, grad_outputs: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        if let Some(parts) = &self.parts {
            return parts.vjp(grad_outputs);
        }
        let mut objective: Option<Tensor> = None;
        for (out, grad) in self.outputs.iter().zip(grad_outputs) {
            if let (Some(g), true) = (grad, out.requires_grad()) {
                let term = (out * g).sum(tch::Kind::Float);
                objective = Some(match objective {
                    Some(o) => o + term,
                    None => term,
                });
            }
        }
        let leaves: Vec<&Tensor> = self
            .inputs
            .iter()
            .flatten()
            .filter(|t| t.requires_grad())
            .collect();
        let (Some(objective), false) = (objective, leaves.is_empty()) else {
            return Ok(self.inputs.iter().map(|_| None).collect());
        };
        let mut grads = Tensor::f_run_backward(&[objective], &leaves, true, false)?.into_iter();
        Ok(self
            .inputs
            .iter()
            .map(|t| match t {
                Some(t) if t.requires_grad() => grads.next(),
                _ => None,
            })
            .collect())
    }

    /// The first input, which rules on one-input nodes (activations, pools) work on.
    pub fn input(&self) -> Result<&Tensor> {
        self.inputs
            .first()
            .and_then(|t| t.as_ref())
            .context("the node has no first input")
    }
}

/// The gradients a rule sees at its node, in the terms of Captum's module hooks.
pub struct Grads<'a> {
    /// At each output, as the rest of the graph sent it (after the rules of the output's own
    /// consumers rewrote it): what a module's full backward hook receives.
    pub outputs: &'a [Option<Tensor>],
    /// At each output, before its consumers' rules rewrote it: what a hook recording the
    /// output's gradient sees first (Captum's `grad_output` for DeepLift and deconvnet).
    pub outputs_plain: &'a [Option<Tensor>],
    /// The total gradient at input 0 after the plain backward of every consumer of that
    /// input, this node included: Captum's `grad_input`.
    pub input: &'a Tensor,
}

/// Rewrites the gradient at a node's first input, as a tensor hook on a module's input does.
/// The node's own plain backward has already contributed to `grads.input`; a rule may use it
/// or recompute from the output gradients (LRP).
pub trait Rule {
    fn rewrite(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grads: &Grads<'_>,
    ) -> Result<Tensor>;
}

/// The rules by name, with their parameters, as a composite names them.
#[derive(Deserialize, Debug, Clone)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleSpec {
    Gradient,
    GuidedBackprop,
    Deconvnet,
    /// DeepLift's rescale rule on an elementwise nonlinearity.
    Rescale {
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// DeepLift's rule for max pooling.
    RescaleMaxPool {
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// DeepLift's rescale on a softmax, with the multipliers' mean removed.
    RescaleSoftmax {
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// DeepLift's rescale as shap's DeepExplainer applies it (after the consumers' rules;
    /// shap's threshold 1e-6).
    RescaleShap {
        #[serde(default = "default_shap_eps")]
        eps: f64,
    },
    /// DeepLift's max-pool rule as shap's DeepExplainer applies it (0 where `|Δx|` is below
    /// shap's 1e-7).
    RescaleMaxPoolShap {
        #[serde(default = "default_shap_pool_eps")]
        eps: f64,
    },
    /// LRP-ε on linear nodes.
    Epsilon {
        #[serde(default = "default_lrp_epsilon")]
        epsilon: f64,
    },
    /// LRP-γ on linear nodes.
    Gamma {
        #[serde(default = "default_gamma")]
        gamma: f64,
        #[serde(default)]
        set_bias_to_zero: bool,
    },
    /// LRP-α1β0 on linear nodes.
    Alpha1Beta0 {
        #[serde(default)]
        set_bias_to_zero: bool,
    },
    /// LRP-αβ on linear nodes, inputs split by sign (zennit's `AlphaBeta`).
    AlphaBeta {
        alpha: f64,
        beta: f64,
        #[serde(default = "default_stabiliser")]
        epsilon: f64,
    },
    /// LRP-z⁺ (zennit's `ZPlus`: α-β with α = 1, β = 0).
    ZPlus {
        #[serde(default = "default_stabiliser")]
        epsilon: f64,
    },
    /// LRP-z^B for a first layer with inputs in [low, high] (zennit's `ZBox`).
    ZBox {
        low: f64,
        high: f64,
        #[serde(default = "default_stabiliser")]
        epsilon: f64,
    },
    /// Relevance passes unchanged (LRP on activations).
    PassThrough,
    /// Excitation backprop on linear nodes (z⁺ without bias); with `contrast`, the dual unit's
    /// (the weights negated, as contrastive excitation backprop's classifier takes them).
    ExcitationBackprop {
        #[serde(default)]
        contrast: bool,
    },
}

fn default_lrp_epsilon() -> f64 {
    1e-9
}

/// zennit's stabiliser.
fn default_stabiliser() -> f64 {
    1e-6
}

fn default_gamma() -> f64 {
    0.25
}

fn default_eps() -> f64 {
    1e-10
}

/// shap's `nonlinear_1d` threshold.
fn default_shap_eps() -> f64 {
    1e-6
}

/// shap's `maxpool` threshold.
fn default_shap_pool_eps() -> f64 {
    1e-7
}

impl RuleSpec {
    /// The rule, or `None` for the plain gradient.
    fn build(&self) -> Option<Box<dyn Rule>> {
        Some(match *self {
            RuleSpec::Gradient => return None,
            RuleSpec::GuidedBackprop => Box::new(guided_backprop::GuidedBackprop),
            RuleSpec::Deconvnet => Box::new(deconvnet::Deconvnet),
            RuleSpec::Rescale { eps } => Box::new(rescale::Rescale { eps }),
            RuleSpec::RescaleMaxPool { eps } => Box::new(rescale_maxpool::RescaleMaxPool { eps }),
            RuleSpec::RescaleSoftmax { eps } => Box::new(rescale_softmax::RescaleSoftmax { eps }),
            RuleSpec::RescaleShap { eps } => Box::new(rescale_shap::RescaleShap { eps }),
            RuleSpec::RescaleMaxPoolShap { eps } => {
                Box::new(rescale_max_pool_shap::RescaleMaxPoolShap { eps })
            }
            RuleSpec::Epsilon { epsilon } => Box::new(lrp_epsilon::LrpEpsilon { epsilon }),
            RuleSpec::Gamma {
                gamma,
                set_bias_to_zero,
            } => Box::new(lrp_gamma::LrpGamma {
                gamma,
                set_bias_to_zero,
            }),
            RuleSpec::Alpha1Beta0 { set_bias_to_zero } => {
                Box::new(lrp_alpha1_beta0::LrpAlpha1Beta0 { set_bias_to_zero })
            }
            RuleSpec::AlphaBeta {
                alpha,
                beta,
                epsilon,
            } => Box::new(lrp_alpha_beta::LrpAlphaBeta {
                alpha,
                beta,
                epsilon,
            }),
            RuleSpec::ZPlus { epsilon } => Box::new(lrp_alpha_beta::LrpAlphaBeta {
                alpha: 1.0,
                beta: 0.0,
                epsilon,
            }),
            RuleSpec::ZBox { low, high, epsilon } => {
                Box::new(lrp_z_box::LrpZBox { low, high, epsilon })
            }
            RuleSpec::PassThrough => Box::new(pass_through::PassThrough),
            RuleSpec::ExcitationBackprop { contrast } => {
                Box::new(excitation_backprop::ExcitationBackprop { contrast })
            }
        })
    }
}

/// Which rule applies to which nodes.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Composite {
    #[serde(default)]
    pub rules: Vec<Assignment>,
}

/// A rule for the nodes of the given op types and/or inside the given layers (a node belongs
/// to layer `enc` when its module path is `enc` or starts with `enc.`).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    #[serde(default)]
    pub ops: Vec<String>,
    #[serde(default)]
    pub layers: Vec<String>,
    pub rule: RuleSpec,
}

impl Assignment {
    fn matches(&self, node: &NodeView<'_>) -> bool {
        let op = self.ops.is_empty() || self.ops.iter().any(|o| o == node.op_type);
        let layer = self.layers.is_empty()
            || self.layers.iter().any(|l| {
                node.layer == l
                    || node
                        .layer
                        .strip_prefix(l.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            });
        op && layer
    }
}

impl Composite {
    pub fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).with_context(|| format!("invalid rule composite {json}"))
    }

    /// The rule for `node`: the first matching assignment's; `None` for the plain gradient.
    fn rule_for(&self, node: &NodeView<'_>) -> Option<Box<dyn Rule>> {
        self.rules.iter().find(|a| a.matches(node))?.rule.build()
    }
}
