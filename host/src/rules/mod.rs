//! Backward rules: a backward pass through a graph model in which each node's gradient step
//! may be replaced by a rule (guided backprop, deconvnet, DeepLift's rescale, LRP, ...).
//!
//! A [`Rule`] is one small type in its own file: given a node, the values it saw in the forward
//! pass and the gradients (relevances) of its outputs, it returns those of its inputs. A
//! [`Composite`] says which rule applies to which nodes, by ONNX op type or layer name; the
//! first matching entry wins and unmatched nodes take the plain gradient. The engine
//! (engine.rs) records every node's values during the forward pass and walks the nodes in
//! reverse.

mod deconvnet;
mod engine;
mod gradient;
mod guided_backprop;
mod rescale;
mod rescale_maxpool;
mod rescale_softmax;

use anyhow::{Context as _, Result};
use serde::Deserialize;
use tch::Tensor;

use crate::model::graph::NodeView;

pub use engine::{backward, RuleOutput};

/// A node's values from the forward pass. Inputs that came from the model's input (not
/// constants) are autograd leaves, so the node's own gradient is one local backward away.
pub struct Recorded {
    pub inputs: Vec<Option<Tensor>>,
    pub outputs: Vec<Tensor>,
}

impl Recorded {
    /// The plain vector-Jacobian product of the node: gradients of its leaf inputs given
    /// `grad_outputs` (None for inputs that are constants or do not depend on the outputs).
    pub fn vjp(&self, grad_outputs: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
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

/// Replaces one node's gradient step.
pub trait Rule {
    fn backward(
        &self,
        node: &NodeView<'_>,
        recorded: &Recorded,
        grad_outputs: &[Option<Tensor>],
    ) -> Result<Vec<Option<Tensor>>>;
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
}

fn default_eps() -> f64 {
    1e-10
}

impl RuleSpec {
    fn build(&self) -> Box<dyn Rule> {
        match *self {
            RuleSpec::Gradient => Box::new(gradient::Gradient),
            RuleSpec::GuidedBackprop => Box::new(guided_backprop::GuidedBackprop),
            RuleSpec::Deconvnet => Box::new(deconvnet::Deconvnet),
            RuleSpec::Rescale { eps } => Box::new(rescale::Rescale { eps }),
            RuleSpec::RescaleMaxPool { eps } => Box::new(rescale_maxpool::RescaleMaxPool { eps }),
            RuleSpec::RescaleSoftmax { eps } => Box::new(rescale_softmax::RescaleSoftmax { eps }),
        }
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

    /// The rule for `node`: the first matching assignment's, else the plain gradient.
    fn rule_for(&self, node: &NodeView<'_>) -> Box<dyn Rule> {
        self.rules
            .iter()
            .find(|a| a.matches(node))
            .map_or(RuleSpec::Gradient, |a| a.rule.clone())
            .build()
    }
}
