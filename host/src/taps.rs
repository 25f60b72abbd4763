//! Layer taps: a forward pass of a graph model that captures the outputs of named layers or
//! replaces them (layer methods: activations, layer gradients, layer integrated gradients,
//! layer ablation).

use std::collections::HashMap;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::model::graph::{pad_batch, GraphModel, LayerInfo, NodeHook, NodeView};
use crate::model::{channels_last, Model};
use crate::task::TaskWrapper;

/// One tap: a layer name, and the tensor to use instead of its output, if any; `at_input`
/// moves the tap to the layer's input.
pub struct Tap {
    pub layer: String,
    pub replace: Option<Tensor>,
    pub at_input: bool,
}

/// Where a tap sits in the graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Site {
    /// Output 0 of the node.
    Output(usize),
    /// The value called `value` as the nodes `nodes` (the layer's, in execution order) read it.
    Input { value: String, nodes: Vec<usize> },
}

/// The layer's nodes and the value it reads from outside: the first non-constant input, in
/// execution order, that no node of the layer produces (a PyTorch module's first argument).
fn input_site(graph: &dyn GraphModel, layer: &LayerInfo) -> Result<Site> {
    let inside = |path: &str| path == layer.name || path.starts_with(&format!("{}.", layer.name));
    let nodes: Vec<usize> = (0..=layer.node)
        .filter(|&i| inside(graph.node(i).layer))
        .collect();
    let mut produced = std::collections::HashSet::new();
    for &i in &nodes {
        let node = graph.node(i);
        let external = node
            .input_names
            .iter()
            .zip(node.input_is_constant)
            .find(|(name, &constant)| !constant && !produced.contains(name.as_str()));
        if let Some((value, _)) = external {
            return Ok(Site::Input {
                value: value.clone(),
                nodes,
            });
        }
        produced.extend(node.output_names.iter().map(String::as_str));
    }
    bail!(
        "the layer `{}` reads no input computed from the model's input, so it has no input to \
         tap; leave attribute_to_layer_input false",
        layer.name
    )
}

/// Where a tap on `layer` sits: its last node's output, or (`at_input`) the value it reads.
pub fn site(graph: &dyn GraphModel, layer: &str, at_input: bool) -> Result<Site> {
    let layer = graph.layer(layer)?;
    if at_input {
        input_site(graph, layer)
    } else {
        Ok(Site::Output(layer.node))
    }
}

/// The model as a graph, or an error that says why a black box cannot have taps or rules.
pub fn graph_of<'m>(model: &'m dyn Model, what: &str) -> Result<&'m dyn GraphModel> {
    match model.graph() {
        Some(g) => Ok(g),
        None => bail!(
            "{what} needs a graph model, but this model is TorchScript, a black box without \
             layers; export it to ONNX with tools/export_model.py and pass the .onnx file"
        ),
    }
}

/// Scores `[B, K]` of the wrapped model and, per tap, the layer output the graph used. With a
/// fixed-batch export the batch is run in chunks of that size (replacements chunked alike).
pub fn forward_taps(
    model: &dyn Model,
    wrapper: &TaskWrapper,
    inputs: &Tensor,
    taps: &[Tap],
) -> Result<(Tensor, Vec<Tensor>)> {
    let (scores, layers) = run_taps(model, Some(wrapper), inputs, taps)?;
    Ok((Tensor::cat(&scores, 0), layers))
}

/// Per tap, the layer's value, from a forward pass that stops once the last tap is captured:
/// the nodes after it (and their share of a backward pass) are never run. Taps only capture.
pub fn layer_values(model: &dyn Model, inputs: &Tensor, taps: &[Tap]) -> Result<Vec<Tensor>> {
    if let Some(tap) = taps.iter().find(|t| t.replace.is_some()) {
        bail!(
            "layer values only capture, but the tap on layer `{}` carries a replacement; \
             replace layers through a forward pass with taps",
            tap.layer
        );
    }
    let values = run_taps(model, None, inputs, taps)?.1;
    Ok(values.iter().map(Tensor::contiguous).collect())
}

/// Float images on the CPU laid out channels-last, as TorchScript models take them (see
/// `TorchScriptModel::forward_once`): oneDNN's convolutions then skip their reorders. In
/// bench/cnnvis.py a ResNet-18's steps to block `layers.5` took about 8% less. Only where no
/// score is computed, whose layout callers and fixtures rely on.
fn images_laid_out(part: Tensor) -> Result<Tensor> {
    match part.dim() == 4 && part.device() == Device::Cpu && part.kind() == Kind::Float {
        true => channels_last(&part),
        false => Ok(part),
    }
}

/// The tapped forward in chunks of a fixed-batch export: the wrapped scores of each chunk
/// (none without a wrapper, the pass then stopping at the last tap) and each tap's value.
fn run_taps(
    model: &dyn Model,
    wrapper: Option<&TaskWrapper>,
    inputs: &Tensor,
    taps: &[Tap],
) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let graph = graph_of(model, "a layer method")?;
    let sites: Vec<Site> = taps
        .iter()
        .map(|t| site(graph, &t.layer, t.at_input))
        .collect::<Result<_>>()?;
    let batch = inputs.size()[0];
    let chunk = graph.fixed_batch().filter(|&n| n != batch).unwrap_or(batch);
    let mut scores = Vec::new();
    let mut captured: Vec<Vec<Tensor>> = taps.iter().map(|_| Vec::new()).collect();
    for start in (0..batch).step_by(chunk as usize) {
        let len = chunk.min(batch - start);
        let mut hook = TapHook::new(taps, &sites, start, len, chunk);
        let part = pad_batch(inputs.narrow(0, start, len), chunk)?;
        if let Some(wrapper) = wrapper {
            let out = graph.forward_hooked(&part, &mut hook)?;
            scores.push(wrapper.scores(&out)?.narrow(0, 0, len));
        } else {
            hook.stop_when_captured = true;
            graph.forward_until(&images_laid_out(part)?, &mut hook)?;
        }
        for (i, value) in hook.captured.into_iter().enumerate() {
            match value {
                Some(v) if len < chunk => captured[i].push(v.narrow(0, 0, len)),
                Some(v) => captured[i].push(v),
                None => bail!(
                    "the layer `{}` did not run in the forward pass",
                    taps[i].layer
                ),
            }
        }
    }
    // One whole chunk: the captured value itself, so that gradients reach it (a concatenation
    // of chunks, or a padded chunk's real rows, is a copy that the scores do not depend on:
    // Context::tap_gradient then replaces the layer by it).
    let layers = captured
        .into_iter()
        .map(|mut parts| match parts.len() {
            1 => parts.remove(0),
            _ => Tensor::cat(&parts, 0),
        })
        .collect();
    Ok((scores, layers))
}

/// Captures or replaces output 0 of the tapped nodes, or the input of tapped layers.
struct TapHook<'a> {
    taps: &'a [Tap],
    sites: &'a [Site],
    /// Output taps by node.
    by_node: HashMap<usize, Vec<usize>>,
    /// The rows of the batch being run (`start..start + len`), padded to `chunk`:
    /// replacements are cut to them and padded alike.
    start: i64,
    len: i64,
    chunk: i64,
    captured: Vec<Option<Tensor>>,
    /// End the pass once every tap is captured (no scores wanted).
    stop_when_captured: bool,
}

impl<'a> TapHook<'a> {
    fn new(taps: &'a [Tap], sites: &'a [Site], start: i64, len: i64, chunk: i64) -> Self {
        let mut by_node: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, site) in sites.iter().enumerate() {
            if let Site::Output(node) = site {
                by_node.entry(*node).or_default().push(i);
            }
        }
        TapHook {
            taps,
            sites,
            by_node,
            start,
            len,
            chunk,
            captured: (0..taps.len()).map(|_| None).collect(),
            stop_when_captured: false,
        }
    }

    /// Tap `i`'s replacement cut to this chunk, checked against the value it stands for.
    fn replacement(&self, i: usize, original: &Tensor) -> Result<Option<Tensor>> {
        let tap = &self.taps[i];
        let Some(value) = &tap.replace else {
            return Ok(None);
        };
        let side = if tap.at_input { "input" } else { "output" };
        let value = value.f_narrow(0, self.start, self.len).map_err(|_| {
            anyhow::anyhow!(
                "the replacement for layer `{}` has batch size {}, not the inputs' {}",
                tap.layer,
                value.size().first().copied().unwrap_or(0),
                self.start + self.len
            )
        })?;
        let value = pad_batch(value, self.chunk)?;
        if value.size() != original.size() {
            bail!(
                "the replacement for layer `{}` has shape {:?}, but the layer's {side} has \
                 shape {:?}",
                tap.layer,
                value.size(),
                original.size()
            );
        }
        Ok(Some(value.to_kind(original.kind())))
    }
}

impl NodeHook for TapHook<'_> {
    fn before_node(
        &mut self,
        node: &NodeView<'_>,
        mut inputs: Vec<Option<Tensor>>,
    ) -> Result<Vec<Option<Tensor>>> {
        for i in 0..self.taps.len() {
            let Site::Input { value, nodes } = &self.sites[i] else {
                continue;
            };
            if !nodes.contains(&node.index) {
                continue;
            }
            for (slot, name) in inputs.iter_mut().zip(node.input_names) {
                let Some(original) = slot.as_ref().filter(|_| name == value) else {
                    continue;
                };
                // The first read captures; every read inside the layer takes the replacement.
                if let Some(replaced) = self.replacement(i, original)? {
                    *slot = Some(replaced);
                }
                if self.captured[i].is_none() {
                    self.captured[i] = slot.as_ref().map(Tensor::shallow_clone);
                }
            }
        }
        Ok(inputs)
    }

    fn after_node(
        &mut self,
        node: &NodeView<'_>,
        _inputs: &[Option<Tensor>],
        mut outputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        let Some(taps) = self.by_node.get(&node.index) else {
            return Ok(outputs);
        };
        for &i in taps {
            if let Some(value) = self.replacement(i, &outputs[0])? {
                outputs[0] = value;
            }
            self.captured[i] = Some(outputs[0].shallow_clone());
        }
        Ok(outputs)
    }

    fn finished(&self) -> bool {
        self.stop_when_captured && self.captured.iter().all(Option::is_some)
    }
}
