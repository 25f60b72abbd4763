//! Layer taps: a forward pass of a graph model that captures the outputs of named layers or
//! replaces them (layer methods: activations, layer gradients, layer integrated gradients,
//! layer ablation).

use std::collections::HashMap;

use anyhow::{bail, Result};
use tch::Tensor;

use crate::model::graph::{GraphModel, LayerInfo, NodeHook, NodeView};
use crate::model::Model;
use crate::suggest::did_you_mean;
use crate::task::TaskWrapper;

/// One tap: a layer name, and the tensor to use instead of its output, if any.
pub struct Tap {
    pub layer: String,
    pub replace: Option<Tensor>,
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

/// The layer called `name`, or an error that lists the nearest names.
pub fn find_layer<'g>(graph: &'g dyn GraphModel, name: &str) -> Result<&'g LayerInfo> {
    let layers = graph.layer_list();
    match layers.iter().find(|l| l.name == name) {
        Some(l) => Ok(l),
        None => bail!(
            "the model has no layer `{name}`.{} `esegeta layers MODEL` lists them.",
            did_you_mean(name, layers.iter().map(|l| l.name.as_str()))
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
    let graph = graph_of(model, "a layer method")?;
    let nodes: Vec<usize> = taps
        .iter()
        .map(|t| find_layer(graph, &t.layer).map(|l| l.node))
        .collect::<Result<_>>()?;
    let batch = inputs.size()[0];
    let chunk = graph.fixed_batch().filter(|&n| n != batch).unwrap_or(batch);
    if batch % chunk != 0 {
        bail!(
            "the model was exported with a fixed batch size of {chunk}, which does not divide \
             this batch of {batch}; export it with a dynamic batch (tools/export_model.py)"
        );
    }
    let mut scores = Vec::new();
    let mut captured: Vec<Vec<Tensor>> = taps.iter().map(|_| Vec::new()).collect();
    for start in (0..batch).step_by(chunk as usize) {
        let mut hook = TapHook::new(taps, &nodes, start, chunk);
        let out = graph.forward_hooked(&inputs.narrow(0, start, chunk), &mut hook)?;
        scores.push(wrapper.scores(&out)?);
        for (i, value) in hook.captured.into_iter().enumerate() {
            match value {
                Some(v) => captured[i].push(v),
                None => bail!(
                    "the layer `{}` did not run in the forward pass",
                    taps[i].layer
                ),
            }
        }
    }
    let layers = captured.iter().map(|parts| Tensor::cat(parts, 0)).collect();
    Ok((Tensor::cat(&scores, 0), layers))
}

/// Captures or replaces output 0 of the tapped nodes.
struct TapHook<'a> {
    taps: &'a [Tap],
    by_node: HashMap<usize, Vec<usize>>,
    /// The chunk of the batch being run: replacements are cut to it.
    start: i64,
    len: i64,
    captured: Vec<Option<Tensor>>,
}

impl<'a> TapHook<'a> {
    fn new(taps: &'a [Tap], nodes: &[usize], start: i64, len: i64) -> Self {
        let mut by_node: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, &node) in nodes.iter().enumerate() {
            by_node.entry(node).or_default().push(i);
        }
        TapHook {
            taps,
            by_node,
            start,
            len,
            captured: (0..taps.len()).map(|_| None).collect(),
        }
    }
}

impl NodeHook for TapHook<'_> {
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
            let tap = &self.taps[i];
            if let Some(value) = &tap.replace {
                let value = value.f_narrow(0, self.start, self.len).map_err(|_| {
                    anyhow::anyhow!(
                        "the replacement for layer `{}` has batch size {}, not the inputs' {}",
                        tap.layer,
                        value.size().first().copied().unwrap_or(0),
                        self.start + self.len
                    )
                })?;
                if value.size() != outputs[0].size() {
                    bail!(
                        "the replacement for layer `{}` has shape {:?}, but the layer's output \
                         has shape {:?}",
                        tap.layer,
                        value.size(),
                        outputs[0].size()
                    );
                }
                outputs[0] = value.to_kind(outputs[0].kind());
            }
            self.captured[i] = Some(outputs[0].shallow_clone());
        }
        Ok(outputs)
    }
}
