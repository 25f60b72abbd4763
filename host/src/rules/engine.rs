//! The rule-based backward pass: record every node's values in a forward pass, seed the
//! target score's gradient at the model output (through the task wrapper, with plain
//! autograd), then walk the nodes in reverse: each node's plain backward, and the rules of a
//! value's consumers rewriting its gradient once it is complete.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::{Composite, Grads, Recorded, Rule};
use crate::model::graph::{GraphModel, NodeHook, NodeView};
use crate::taps::Site;
use crate::task::TaskWrapper;

/// What a rule-based backward pass gives.
pub struct RuleOutput {
    /// The relevance (modified gradient) at the model input.
    pub inputs: Tensor,
    /// At the requested layer: its relevance and its output.
    pub layer: Option<(Tensor, Tensor)>,
    /// A sentence when the composite's rules meant for activations act on only some of the
    /// graph's activations, or none (a map named "guided backprop" that is plain gradient).
    pub coverage_warning: Option<String>,
}

/// The ONNX op types of elementwise activations, which the ReLU-family rules target.
const ACTIVATIONS: &[&str] = &[
    "Relu",
    "PRelu",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Celu",
    "Gelu",
    "Sigmoid",
    "HardSigmoid",
    "Tanh",
    "Softplus",
    "Softsign",
    "HardSwish",
    "Mish",
    "ThresholdedRelu",
];

/// How many nodes of each activation op type the graph has.
pub fn activations(graph: &dyn GraphModel) -> std::collections::BTreeMap<String, usize> {
    let mut census = std::collections::BTreeMap::new();
    for index in 0..graph.node_count() {
        let op = graph.node(index).op_type;
        if ACTIVATIONS.contains(&op) {
            *census.entry(op.to_string()).or_default() += 1;
        }
    }
    census
}

/// How many of the graph's activations take a rule, when the composite names an activation
/// op type (so it is meant for them): "rule on 3 of 17 activations; PRelu x14 pass plain
/// gradients, as in Captum".
fn coverage(
    graph: &dyn GraphModel,
    composite: &Composite,
    nodes: usize,
    rules: &[Option<Box<dyn Rule>>],
) -> Option<String> {
    let aimed = composite
        .rules
        .iter()
        .any(|a| a.ops.iter().any(|o| ACTIVATIONS.contains(&o.as_str())));
    if !aimed {
        return None;
    }
    let mut total = 0;
    let mut plain: std::collections::BTreeMap<String, usize> = Default::default();
    for index in 0..nodes {
        let node = graph.node(index);
        if ACTIVATIONS.contains(&node.op_type) {
            total += 1;
            if rules[index].is_none() {
                *plain.entry(node.op_type.to_string()).or_default() += 1;
            }
        }
    }
    let missed: usize = plain.values().sum();
    if missed == 0 {
        return None;
    }
    let list: Vec<String> = plain.iter().map(|(op, n)| format!("{op} x{n}")).collect();
    Some(format!(
        "the rule acts on {} of the model's {total} activations; {} pass plain gradients, as in \
         Captum (whose hooks act on nn.ReLU only){}",
        total - missed,
        list.join(", "),
        if total == missed {
            ": this map is the plain gradient, whatever its method's name"
        } else {
            ""
        }
    ))
}

/// Runs `inputs` forward and back with the rules of `composite`, from the `target` score.
/// At `layer`, the relevance of the tapped value is also returned with the value.
///
/// Rules act as Captum's module hooks do: a value's gradient is first the sum of its
/// consumers' plain backward contributions (what a hook recording it sees), then the rules of
/// its consumers rewrite it in forward order, and the rewritten gradient flows on.
pub fn backward(
    graph: &dyn GraphModel,
    wrapper: &TaskWrapper,
    inputs: &Tensor,
    start: Start<'_>,
    composite: &Composite,
    layer: Option<Site>,
) -> Result<RuleOutput> {
    let (recorder, output) = record(graph, inputs)?;
    let layer_value = layer.as_ref().map(|site| site_value(graph, site));
    let mut pass = Pass::new(graph, composite, &recorder.records);
    let coverage_warning = coverage(graph, composite, recorder.records.len(), &pass.rules);
    match start {
        Start::Target(target) => {
            let seed = seed(wrapper, &output, target)?;
            pass.plain.insert(graph.output_name().to_string(), seed);
        }
        Start::Layer(seed) => {
            let (Some(site), Some(name)) = (&layer, &layer_value) else {
                bail!("a backward pass started at a layer needs the layer");
            };
            let value = site_activation(graph, &recorder.records, site, inputs);
            if value.size() != seed.size() {
                bail!(
                    "the gradient to start from has shape {:?}, but the layer's value has \
                     shape {:?}",
                    seed.size(),
                    value.size()
                );
            }
            pass.plain.insert(name.clone(), seed.to_kind(value.kind()));
        }
    }
    let mut at_layer = None;
    for (index, recorded) in recorder.records.iter().enumerate().rev() {
        let node = graph.node(index);
        let plain: Vec<Option<Tensor>> = node
            .output_names
            .iter()
            .map(|n| pass.plain.remove(n))
            .collect();
        let mut finals = Vec::with_capacity(plain.len());
        for (name, g) in node.output_names.iter().zip(&plain) {
            let gradient = pass.finalise(name, g.as_ref())?;
            if layer_value.as_deref() == Some(name.as_str()) {
                at_layer = gradient.as_ref().map(Tensor::shallow_clone);
            }
            finals.push(gradient);
        }
        if finals.iter().all(Option::is_none) {
            continue;
        }
        let contributions = recorded.vjp(&finals)?;
        if pass.rules[index].is_some() {
            pass.seen.insert(index, (finals, plain));
        }
        pass.accumulate(&node, contributions);
    }
    let at_input = pass.plain.remove(&recorder.model_input);
    let input_grad = pass
        .finalise(&recorder.model_input, at_input.as_ref())?
        .unwrap_or_else(|| inputs.zeros_like());
    if layer_value.as_deref() == Some(recorder.model_input.as_str()) {
        at_layer = Some(input_grad.shallow_clone());
    }
    let layer = layer.as_ref().map(|site| {
        let value = site_activation(graph, &recorder.records, site, inputs);
        let relevance = at_layer.unwrap_or_else(|| value.zeros_like());
        (relevance.detach(), value)
    });
    Ok(RuleOutput {
        inputs: input_grad.detach(),
        layer,
        coverage_warning,
    })
}

/// Every node's values in a forward pass of `inputs`, and the model output: in one pass, or
/// on a model exported with another fixed batch size in chunks of it, joined (chunks.rs).
fn record(graph: &dyn GraphModel, inputs: &Tensor) -> Result<(Recorder, Tensor)> {
    let batch = inputs.size()[0];
    let Some(fixed) = graph.fixed_batch().filter(|&n| n != batch) else {
        let mut recorder = Recorder::default();
        let output = graph.forward_hooked(inputs, &mut recorder)?;
        return Ok((recorder, output));
    };
    let mut per_node: Vec<Vec<Recorded>> = Vec::new();
    let mut outputs = Vec::new();
    let mut joined = Recorder::default();
    for part in super::chunks::split(inputs, fixed)? {
        let mut recorder = Recorder::default();
        outputs.push(graph.forward_hooked(&part, &mut recorder)?.detach());
        if per_node.is_empty() {
            per_node = recorder.records.into_iter().map(|r| vec![r]).collect();
        } else if per_node.len() != recorder.records.len() {
            bail!("the graph ran a different number of nodes on another chunk of the batch");
        } else {
            for (node, r) in per_node.iter_mut().zip(recorder.records) {
                node.push(r);
            }
        }
        joined.model_input = recorder.model_input;
    }
    joined.records = per_node
        .into_iter()
        .map(|chunks| super::chunks::join(chunks, fixed, batch))
        .collect::<Result<_>>()?;
    let output = Tensor::f_cat(&outputs, 0)?.f_narrow(0, 0, batch)?;
    Ok((joined, output))
}

/// Where a rule-based backward pass starts.
#[derive(Clone, Copy)]
pub enum Start<'a> {
    /// At the model output, from the wrapped model's score of this target.
    Target(i64),
    /// At the requested layer's value, with this gradient (shaped like the value).
    Layer(&'a Tensor),
}

/// The ONNX value a tap site stands for.
fn site_value(graph: &dyn GraphModel, site: &Site) -> String {
    match site {
        Site::Output(node) => graph.node(*node).output_names[0].clone(),
        Site::Input { value, .. } => value.clone(),
    }
}

/// The tapped value as the forward pass saw it (the model input when the site reads it).
fn site_activation(
    graph: &dyn GraphModel,
    records: &[Recorded],
    site: &Site,
    inputs: &Tensor,
) -> Tensor {
    let read = match site {
        Site::Output(node) => Some(&records[*node].outputs[0]),
        Site::Input { value, nodes } => {
            let node = graph.node(nodes[0]);
            let slot = node.input_names.iter().position(|n| n == value);
            slot.and_then(|i| records[nodes[0]].inputs[i].as_ref())
        }
    };
    read.map_or_else(|| inputs.shallow_clone(), Tensor::detach)
}

/// The state of one backward pass.
struct Pass<'a> {
    graph: &'a dyn GraphModel,
    records: &'a [Recorded],
    /// Each node's rule (`None`: plain gradient).
    rules: Vec<Option<Box<dyn Rule>>>,
    /// Per value: the nodes with a rule that take it as their first input, in forward order.
    hooked_consumers: HashMap<String, Vec<usize>>,
    /// Per value: the sum of its consumers' plain backward contributions so far.
    plain: HashMap<String, Tensor>,
    /// Per node with a rule: its outputs' gradients, rewritten and plain.
    seen: HashMap<usize, (Vec<Option<Tensor>>, Vec<Option<Tensor>>)>,
}

impl<'a> Pass<'a> {
    fn new(graph: &'a dyn GraphModel, composite: &Composite, records: &'a [Recorded]) -> Self {
        let mut rules = Vec::with_capacity(records.len());
        let mut hooked_consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for index in 0..records.len() {
            let node = graph.node(index);
            let rule = composite.rule_for(&node);
            if let (Some(_), Some(input)) = (&rule, node.input_names.first()) {
                hooked_consumers
                    .entry(input.clone())
                    .or_default()
                    .push(index);
            }
            rules.push(rule);
        }
        Pass {
            graph,
            records,
            rules,
            hooked_consumers,
            plain: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// The gradient of value `name` once its consumers' rules have rewritten `plain`.
    fn finalise(&self, name: &str, plain: Option<&Tensor>) -> Result<Option<Tensor>> {
        let Some(mut total) = plain.map(Tensor::shallow_clone) else {
            return Ok(None);
        };
        for &consumer in self.hooked_consumers.get(name).into_iter().flatten() {
            let (Some(rule), Some((outputs, outputs_plain))) =
                (&self.rules[consumer], self.seen.get(&consumer))
            else {
                continue;
            };
            let grads = Grads {
                outputs,
                outputs_plain,
                input: &total,
            };
            total = rule.rewrite(&self.graph.node(consumer), &self.records[consumer], &grads)?;
        }
        Ok(Some(total))
    }

    fn accumulate(&mut self, node: &NodeView<'_>, contributions: Vec<Option<Tensor>>) {
        for ((name, grad), constant) in node
            .input_names
            .iter()
            .zip(contributions)
            .zip(node.input_is_constant)
        {
            let (Some(grad), false) = (grad, *constant || name.is_empty()) else {
                continue;
            };
            let sum = match self.plain.remove(name) {
                Some(previous) => previous + grad,
                None => grad,
            };
            self.plain.insert(name.clone(), sum);
        }
    }
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

/// Feeds every node autograd leaves for its inputs that are differentiable functions of the
/// model input, and keeps what it saw.
///
/// A value that autograd does not connect to the model input stays a plain tensor: an
/// exporter's convolution bias is `Expand(CastLike(bias, X))`, computed yet reading only X's
/// type. Asking for a bias's gradient makes oneDNN's convolution backward compute the weight
/// gradient too, which tripled the backward rules' time on a ResNet-18 (torch 2.13, 2
/// threads: 89 ms of per-node products, 74 of them in its 20 convolutions).
#[derive(Default)]
struct Recorder {
    records: Vec<Recorded>,
    produced: HashSet<String>,
    /// The value name of the model input: a computed input no node produced.
    model_input: String,
}

impl Recorder {
    /// Whether input `i` of `node`, holding `value`, is the model input or a differentiable
    /// function of it (its producer's record left it connected to that node's leaves). The
    /// first computed input no node produced is taken as the model input.
    fn depends_on_input(&mut self, node: &NodeView<'_>, i: usize, value: &Tensor) -> bool {
        let name = &node.input_names[i];
        if node.input_is_constant[i] || name.is_empty() || !value.is_floating_point() {
            return false;
        }
        if self.model_input.is_empty() && !self.produced.contains(name) {
            self.model_input = name.clone();
        }
        *name == self.model_input || value.requires_grad()
    }
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
                value.map(|t| match self.depends_on_input(node, i, &t) {
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
            parts: None,
        });
        Ok(outputs)
    }
}
