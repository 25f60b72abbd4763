//! The rule-based backward pass: record every node's values in a forward pass, seed the
//! target score's gradient at the model output (through the task wrapper, with plain
//! autograd), then walk the nodes in reverse, letting each node's rule turn its outputs'
//! gradients into its inputs'.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::{Composite, Recorded};
use crate::model::graph::{GraphModel, NodeHook, NodeView};
use crate::task::TaskWrapper;

/// What a rule-based backward pass gives.
pub struct RuleOutput {
    /// The relevance (modified gradient) at the model input.
    pub inputs: Tensor,
    /// At the requested layer: its relevance and its output.
    pub layer: Option<(Tensor, Tensor)>,
}

/// Runs `inputs` forward and back with the rules of `composite`, from the `target` score.
/// `layer` is a node index whose output's relevance is also returned.
pub fn backward(
    graph: &dyn GraphModel,
    wrapper: &TaskWrapper,
    inputs: &Tensor,
    target: i64,
    composite: &Composite,
    layer: Option<usize>,
) -> Result<RuleOutput> {
    let batch = inputs.size()[0];
    if let Some(fixed) = graph.fixed_batch().filter(|&n| n != batch) {
        bail!(
            "backward rules need the whole batch in one pass, but the model was exported with a \
             fixed batch size of {fixed} and this pass has {batch} examples; export it with a \
             dynamic batch (tools/export_model.py)"
        );
    }
    let mut recorder = Recorder::default();
    let output = graph.forward_hooked(inputs, &mut recorder)?;
    let mut grads = HashMap::new();
    grads.insert(
        graph.output_name().to_string(),
        seed(wrapper, &output, target)?,
    );
    let mut at_layer = None;
    for (index, recorded) in recorder.records.iter().enumerate().rev() {
        let node = graph.node(index);
        let grad_outputs: Vec<Option<Tensor>> =
            node.output_names.iter().map(|n| grads.remove(n)).collect();
        if layer == Some(index) {
            let relevance = grad_outputs[0]
                .as_ref()
                .map_or_else(|| recorded.outputs[0].zeros_like(), |g| g.shallow_clone());
            at_layer = Some((relevance, recorded.outputs[0].detach()));
        }
        if grad_outputs.iter().all(Option::is_none) {
            continue;
        }
        let rule = composite.rule_for(&node);
        let grad_inputs = rule.backward(&node, recorded, &grad_outputs)?;
        accumulate(&mut grads, &node, grad_inputs);
    }
    let input_grad = grads
        .remove(&recorder.model_input)
        .unwrap_or_else(|| inputs.zeros_like());
    Ok(RuleOutput {
        inputs: input_grad.detach(),
        layer: at_layer,
    })
}

/// The gradient of the target score, summed over the batch, with respect to the model output.
/// (DeepLift's `[inputs; references]` batches are seeded on both halves, as Captum does.)
fn seed(wrapper: &TaskWrapper, output: &Tensor, target: i64) -> Result<Tensor> {
    let output = output.detach().set_requires_grad(true);
    let scores = wrapper.scores(&output)?;
    let columns = scores.size()[1];
    if target < 0 || target >= columns {
        bail!("target {target} is outside the model's {columns} score column(s)");
    }
    let score = scores.select(1, target);
    let grads = Tensor::f_run_backward(&[score.sum(Kind::Float)], &[&output], false, false)?;
    Ok(grads.into_iter().next().expect("one gradient"))
}

fn accumulate(
    grads: &mut HashMap<String, Tensor>,
    node: &NodeView<'_>,
    inputs: Vec<Option<Tensor>>,
) {
    for ((name, grad), constant) in node
        .input_names
        .iter()
        .zip(inputs)
        .zip(node.input_is_constant)
    {
        let (Some(grad), false) = (grad, *constant || name.is_empty()) else {
            continue;
        };
        let sum = match grads.remove(name) {
            Some(previous) => previous + grad,
            None => grad,
        };
        grads.insert(name.clone(), sum);
    }
}

/// Feeds every node autograd leaves for its computed inputs and keeps what it saw.
#[derive(Default)]
struct Recorder {
    records: Vec<Recorded>,
    produced: HashSet<String>,
    /// The value name of the model input: a computed input no node produced.
    model_input: String,
}

impl NodeHook for Recorder {
    fn before_node(
        &mut self,
        node: &NodeView<'_>,
        inputs: Vec<Option<Tensor>>,
    ) -> Result<Vec<Option<Tensor>>> {
        if self.records.len() != node.index {
            bail!("the graph ran node {} out of order", node.name);
        }
        Ok(inputs
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let computed = !node.input_is_constant[i];
                if computed
                    && self.model_input.is_empty()
                    && !node.input_names[i].is_empty()
                    && !self.produced.contains(&node.input_names[i])
                {
                    self.model_input = node.input_names[i].clone();
                }
                value.map(|t| match computed && t.is_floating_point() {
                    true => t.detach().set_requires_grad(true),
                    false => t,
                })
            })
            .collect())
    }

    fn after_node(
        &mut self,
        node: &NodeView<'_>,
        inputs: &[Option<Tensor>],
        outputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        self.produced.extend(node.output_names.iter().cloned());
        self.records.push(Recorded {
            inputs: inputs
                .iter()
                .map(|t| t.as_ref().map(Tensor::shallow_clone))
                .collect(),
            outputs: outputs.iter().map(Tensor::shallow_clone).collect(),
        });
        Ok(outputs)
    }
}
