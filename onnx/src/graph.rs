//! The executable graph: nodes in topological order with their values resolved to slots,
//! initializers in the model's precision on its device, and the forward pass that calls a
//! [`NodeHook`] around every node.

use std::collections::{HashMap, HashSet};

use anyhow::{anyhow, bail, Context, Result};
use tch::{Device, Kind, Tensor};

use super::names;
use super::ops::{self, is_floating, BuildCtx};
use super::proto::{GraphProto, NodeProto, ValueInfoProto};
use super::tensor::TensorReader;
use crate::graph_model::{LayerInfo, NodeHook, NodeOp, NodeView};

pub struct Node {
    pub name: String,
    pub op_type: String,
    /// The innermost module path ("" when unknown).
    pub layer: String,
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<Option<usize>>,
    pub input_names: Vec<String>,
    pub output_names: Vec<String>,
    pub input_is_constant: Vec<bool>,
    pub op: Box<dyn NodeOp>,
}

pub struct Graph {
    pub nodes: Vec<Node>,
    pub(super) slots: usize,
    /// Initializers by ONNX name, in the model's precision on its device.
    pub initializers: Vec<(usize, String, Tensor)>,
    pub(super) input: usize,
    /// The declared input shape (None for a symbolic dimension).
    pub input_shape: Option<Vec<Option<i64>>>,
    pub outputs: Vec<(usize, String)>,
    /// For each node, the slots no later node reads: freed as soon as it has run.
    pub(super) release: Vec<Vec<usize>>,
    pub layers: Vec<LayerInfo>,
}

/// Names every value and hands out slots.
#[derive(Default)]
struct Slots(HashMap<String, usize>);

impl Slots {
    fn of(&mut self, name: &str) -> usize {
        let next = self.0.len();
        *self.0.entry(name.to_string()).or_insert(next)
    }
}

impl Graph {
    pub fn build(
        proto: &GraphProto,
        opset: i64,
        device: Device,
        kind: Kind,
        reader: &TensorReader,
    ) -> Result<Graph> {
        let mut slots = Slots::default();
        let mut initializers = Vec::new();
        for t in &proto.initializer {
            let value = load_initializer(reader, t, device, kind)?;
            initializers.push((slots.of(&t.name), t.name.clone(), value));
        }
        let constant_names: HashSet<&str> =
            proto.initializer.iter().map(|t| t.name.as_str()).collect();
        let (input, input_shape) = graph_input(proto, &constant_names, &mut slots)?;
        check_assignments(proto, &constant_names)?;
        let order = topological_order(proto, &constant_names)?;
        ops::check_supported(&proto.node, |n| {
            names::module_paths(n).pop().unwrap_or_default()
        })?;
        let ctx = BuildCtx {
            opset,
            float_kind: kind,
            device,
            reader,
        };
        let mut constant: HashSet<String> = constant_names.iter().map(|s| s.to_string()).collect();
        let mut nodes = Vec::with_capacity(order.len());
        let mut paths = Vec::with_capacity(order.len());
        for &i in &order {
            let node_proto = &proto.node[i];
            let modules = names::module_paths(node_proto);
            nodes.push(build_node(
                node_proto,
                &modules,
                &ctx,
                &mut slots,
                &mut constant,
            )?);
            paths.push(modules);
        }
        let layers = names::layer_list(
            paths
                .iter()
                .map(Vec::as_slice)
                .zip(nodes.iter().map(|n| n.op_type.as_str())),
        );
        let outputs: Vec<(usize, String)> = proto
            .output
            .iter()
            .map(|o| (slots.of(&o.name), o.name.clone()))
            .collect();
        if outputs.is_empty() {
            bail!("the graph declares no outputs");
        }
        let release = release_plan(&nodes, &outputs);
        Ok(Graph {
            nodes,
            slots: slots.0.len(),
            initializers,
            input,
            input_shape,
            outputs,
            release,
            layers,
        })
    }

    /// The value names of batch norms' running means and variances (inputs 3 and 4).
    pub fn batch_norm_statistics(&self) -> std::collections::HashSet<String> {
        self.nodes
            .iter()
            .filter(|n| n.op_type == "BatchNormalization")
            .flat_map(|n| n.input_names.iter().skip(3).take(2).cloned())
            .collect()
    }

    /// Node `index` (execution order) as hooks and rules see it.
    pub fn view(&self, index: usize) -> NodeView<'_> {
        let node = &self.nodes[index];
        NodeView {
            index,
            name: &node.name,
            op_type: &node.op_type,
            layer: &node.layer,
            input_names: &node.input_names,
            output_names: &node.output_names,
            input_is_constant: &node.input_is_constant,
            op: node.op.as_ref(),
        }
    }

    /// Runs every node on `x`, calling `hook` around each, and returns output `output`.
    pub fn run(&self, x: &Tensor, hook: &mut dyn NodeHook, output: usize) -> Result<Tensor> {
        let mut values = self.run_nodes(x, hook, false)?;
        let (slot, name) = &self.outputs[output];
        values[*slot]
            .take()
            .ok_or_else(|| anyhow!("the graph output `{name}` was never computed"))
    }

    /// Runs the nodes in order, calling `hook` around each, until the last node or until
    /// `hook.finished()`; returns the values still held.
    pub fn run_until(&self, x: &Tensor, hook: &mut dyn NodeHook) -> Result<Vec<Option<Tensor>>> {
        self.run_nodes(x, hook, true)
    }

    /// The node loop of [`Graph::run`] and (`may_stop`) of [`Graph::run_until`].
    fn run_nodes(
        &self,
        x: &Tensor,
        hook: &mut dyn NodeHook,
        may_stop: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        let mut values: Vec<Option<Tensor>> = (0..self.slots).map(|_| None).collect();
        for (slot, _, t) in &self.initializers {
            values[*slot] = Some(t.shallow_clone());
        }
        values[self.input] = Some(x.shallow_clone());
        for (index, node) in self.nodes.iter().enumerate() {
            let inputs = node
                .inputs
                .iter()
                .map(|slot| slot.and_then(|s| values[s].as_ref().map(Tensor::shallow_clone)))
                .collect();
            let view = self.view(index);
            let inputs = hook.before_node(&view, inputs)?;
            let outputs = run_node(node, &inputs)?;
            if outputs.len() < node.outputs.iter().flatten().count() {
                bail!(
                    "{} gave {} outputs, fewer than its node declares",
                    describe(node),
                    outputs.len()
                );
            }
            let outputs = hook.after_node(&view, &inputs, outputs)?;
            for (slot, value) in node.outputs.iter().zip(outputs) {
                if let Some(slot) = slot {
                    values[*slot] = Some(value);
                }
            }
            for &slot in &self.release[index] {
                values[slot] = None;
            }
            if may_stop && hook.finished() {
                break;
            }
        }
        Ok(values)
    }
}

fn load_initializer(
    reader: &TensorReader,
    t: &super::proto::TensorProto,
    device: Device,
    kind: Kind,
) -> Result<Tensor> {
    let value = reader
        .read(t)
        .with_context(|| format!("cannot read the initializer `{}`", t.name))?;
    let value = if is_floating(value.kind()) {
        value.f_to_kind(kind)?
    } else {
        value
    };
    // Weights are constants of the explanation: autograd never differentiates them.
    Ok(value.f_to_device(device)?.f_detach()?)
}

/// The model's one data input (graph inputs that are initializers are defaults, not inputs).
fn graph_input(
    proto: &GraphProto,
    constants: &HashSet<&str>,
    slots: &mut Slots,
) -> Result<(usize, Option<Vec<Option<i64>>>)> {
    let inputs: Vec<&ValueInfoProto> = proto
        .input
        .iter()
        .filter(|i| !constants.contains(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        bail!(
            "the graph has {} data inputs ({}); esegeta explains models with exactly one input \
             tensor",
            inputs.len(),
            inputs
                .iter()
                .map(|i| format!("`{}`", i.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let shape = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| d.dim_value.filter(|&v| v > 0))
                .collect()
        });
    Ok((slots.of(&input.name), shape))
}

/// Refuses a graph in which a value is written twice (by two nodes, or by a node over an
/// input or initializer) or a graph output is written by nothing: ONNX assigns every value
/// once, and which write would win is not the model's meaning but the importer's accident.
fn check_assignments(proto: &GraphProto, constants: &HashSet<&str>) -> Result<()> {
    let label = |i: usize| {
        let n = &proto.node[i];
        format!("`{}` ({}, number {i})", n.name, n.op_type)
    };
    let inputs: HashSet<&str> = proto.input.iter().map(|i| i.name.as_str()).collect();
    let mut writer: HashMap<&str, usize> = HashMap::new();
    for (i, node) in proto.node.iter().enumerate() {
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            if constants.contains(out.as_str()) || inputs.contains(out.as_str()) {
                bail!(
                    "the node {} writes the value `{out}`, which is already the graph's input \
                     or an initializer; ONNX assigns every value once, so the file is damaged \
                     or not a model",
                    label(i)
                );
            }
            if let Some(first) = writer.insert(out.as_str(), i) {
                bail!(
                    "the value `{out}` is written by two nodes, {} and {}; ONNX assigns every \
                     value once, so the file is damaged or not a model",
                    label(first),
                    label(i)
                );
            }
        }
    }
    for output in &proto.output {
        let name = output.name.as_str();
        if !writer.contains_key(name) && !inputs.contains(name) && !constants.contains(name) {
            bail!(
                "the graph output `{name}` is written by no node, input or initializer; the \
                 file is damaged or not a complete model"
            );
        }
    }
    Ok(())
}

/// Node indices so that every node runs after the nodes it reads from (the exporter's order
/// when it already is one).
fn topological_order(proto: &GraphProto, constants: &HashSet<&str>) -> Result<Vec<usize>> {
    let mut available: HashSet<&str> = constants.iter().copied().collect();
    available.extend(proto.input.iter().map(|i| i.name.as_str()));
    available.insert("");
    let mut done = vec![false; proto.node.len()];
    let mut order = Vec::with_capacity(proto.node.len());
    while order.len() < proto.node.len() {
        let before = order.len();
        for (i, node) in proto.node.iter().enumerate() {
            if !done[i] && node.input.iter().all(|n| available.contains(n.as_str())) {
                done[i] = true;
                order.push(i);
                available.extend(node.output.iter().map(String::as_str));
            }
        }
        if order.len() == before {
            return Err(stuck(proto, &done, &available));
        }
    }
    Ok(order)
}

/// Why no node left can run: one reads a value nothing produces, or the nodes left read each
/// other's outputs in a cycle (named node by node).
fn stuck(proto: &GraphProto, done: &[bool], available: &HashSet<&str>) -> anyhow::Error {
    let producer: HashMap<&str, usize> = proto
        .node
        .iter()
        .enumerate()
        .filter(|(i, _)| !done[*i])
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let missing = |i: usize| {
        proto.node[i]
            .input
            .iter()
            .find(|n| !available.contains(n.as_str()))
            .map_or("", String::as_str)
    };
    let label = |i: usize| {
        let n = &proto.node[i];
        format!("`{}` ({}, number {i})", n.name, n.op_type)
    };
    let Some(first) = (0..proto.node.len()).find(|&i| !done[i]) else {
        return anyhow!("the graph's nodes cannot be ordered");
    };
    // Walk back from a stuck node through the producers of what it waits for: either a value
    // nothing produces, or a node seen before, which closes a cycle.
    let mut path = vec![first];
    loop {
        let at = *path.last().unwrap_or(&first);
        let value = missing(at);
        match producer.get(value) {
            None => {
                return anyhow!(
                    "the node {} reads the value `{value}`, which no node, input or \
                     initializer produces; the file is damaged or not a complete model",
                    label(at)
                )
            }
            Some(&p) => {
                if let Some(start) = path.iter().position(|&n| n == p) {
                    let cycle = &path[start..];
                    let mut text = format!("the node {}", label(cycle[0]));
                    for (j, &n) in cycle.iter().enumerate() {
                        let from = cycle.get(j + 1).copied().unwrap_or(cycle[0]);
                        let who = if j + 1 == cycle.len() {
                            format!("`{}`", proto.node[from].name)
                        } else {
                            label(from)
                        };
                        let lead = if j == 0 { "" } else { ", which" };
                        text += &format!("{lead} reads `{}` from the node {who}", missing(n));
                    }
                    return anyhow!(
                        "the graph has a cycle: {text}; an ONNX graph must be acyclic, so the \
                         file is damaged or not a model"
                    );
                }
                path.push(p);
            }
        }
    }
}

fn build_node(
    proto: &NodeProto,
    modules: &[String],
    ctx: &BuildCtx,
    slots: &mut Slots,
    constant: &mut HashSet<String>,
) -> Result<Node> {
    let layer = modules.last().cloned().unwrap_or_default();
    let op = ops::build(proto, ctx).with_context(|| {
        format!(
            "cannot load the node `{}` (op type `{}`{})",
            proto.name,
            proto.op_type,
            if layer.is_empty() {
                String::new()
            } else {
                format!(", layer `{layer}`")
            }
        )
    })?;
    let slot = |name: &String, slots: &mut Slots| (!name.is_empty()).then(|| slots.of(name));
    let input_is_constant: Vec<bool> = proto
        .input
        .iter()
        .map(|n| n.is_empty() || constant.contains(n))
        .collect();
    // Values computed only from constants are constants too (shapes, folded weights).
    if input_is_constant.iter().all(|&c| c) {
        constant.extend(proto.output.iter().cloned());
    }
    Ok(Node {
        name: proto.name.clone(),
        op_type: proto.op_type.clone(),
        layer,
        inputs: proto.input.iter().map(|n| slot(n, slots)).collect(),
        outputs: proto.output.iter().map(|n| slot(n, slots)).collect(),
        input_names: proto.input.clone(),
        output_names: proto.output.clone(),
        input_is_constant,
        op,
    })
}

/// For each node, the slots whose last reader it is (graph outputs are kept).
fn release_plan(nodes: &[Node], outputs: &[(usize, String)]) -> Vec<Vec<usize>> {
    let mut last = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for slot in node.inputs.iter().flatten() {
            last.insert(*slot, i);
        }
    }
    let kept: HashSet<usize> = outputs.iter().map(|(s, _)| *s).collect();
    let mut plan = vec![Vec::new(); nodes.len()];
    for (slot, i) in last {
        if !kept.contains(&slot) {
            plan[i].push(slot);
        }
    }
    plan
}

fn describe(node: &Node) -> String {
    let layer = if node.layer.is_empty() {
        String::new()
    } else {
        format!(" in layer `{}`", node.layer)
    };
    format!("the node `{}` ({}){layer}", node.name, node.op_type)
}

/// Runs one node's op; a failure names the node and its input shapes, and keeps libtorch's
/// sentence but not the C++ backtrace it appends (thirty frames that tell a user nothing).
pub(super) fn run_node(node: &Node, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    node.op.run(inputs).map_err(|e| {
        anyhow!("{}", crate::torch_errors::plain(&format!("{e:#}")))
            .context(describe_failure(node, inputs))
    })
}

pub(super) fn describe_failure(node: &Node, inputs: &[Option<Tensor>]) -> String {
    let shapes: Vec<String> = inputs
        .iter()
        .map(|t| {
            t.as_ref()
                .map_or("none".into(), |t| format!("{:?}", t.size()))
        })
        .collect();
    format!(
        "{} failed on inputs of shapes [{}]",
        describe(node),
        shapes.join(", ")
    )
}
