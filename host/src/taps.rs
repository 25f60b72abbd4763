//! Layer taps: a forward pass of a graph model that captures the outputs of named layers or
//! replaces them (layer methods: activations, layer gradients, layer integrated gradients,
//! layer ablation).

use std::collections::HashMap;

use anyhow::{bail, Result};
use tch::Tensor;

use crate::model::graph::{GraphModel, NodeHook, NodeView};
use crate::model::Model;
use crate::task::TaskWrapper;

/// One tap: a layer name, whether it taps the layer's input rather than its output, and the
/// tensor to use instead of that value, if any.
pub struct Tap {
    pub layer: String,
    pub at_input: bool,
    pub replace: Option<Tensor>,
}

/// Where a tap acts: output 0 of a node, or input 0 of a node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TapPoint {
    pub node: usize,
    pub at_input: bool,
}

/// The tap point of `layer`: its last node's output, or its first node's input.
pub fn tap_point(graph: &dyn GraphModel, layer: &str, at_input: bool) -> Result<TapPoint> {
    let info = graph.layer(layer)?;
    if !at_input {
        return Ok(TapPoint {
            node: info.node,
            at_input,
        });
    }
    let inside = |scope: &str| {
        scope == layer
            || scope
                .strip_prefix(layer)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    let first = (0..=info.node)
        .find(|&i| inside(graph.node(i).layer))
        .unwrap_or(info.node);
    Ok(TapPoint {
        node: first,
        at_input,
    })
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
    let graph = graph_of(model, "a layer method")?;
    let points: Vec<TapPoint> = taps
        .iter()
        .map(|t| tap_point(graph, &t.layer, t.at_input))
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
        let mut hook = TapHook::new(taps, &points, start, chunk);
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

/// Captures or replaces output 0 (or input 0) of the tapped nodes.
struct TapHook<'a> {
    taps: &'a [Tap],
    by_point: HashMap<TapPoint, Vec<usize>>,
    /// The chunk of the batch being run: replacements are cut to it.
    start: i64,
    len: i64,
    captured: Vec<Option<Tensor>>,
}

impl<'a> TapHook<'a> {
    fn new(taps: &'a [Tap], points: &[TapPoint], start: i64, len: i64) -> Self {
        let mut by_point: HashMap<TapPoint, Vec<usize>> = HashMap::new();
        for (i, &point) in points.iter().enumerate() {
            by_point.entry(point).or_default().push(i);
        }
        TapHook {
            taps,
            by_point,
            start,
            len,
            captured: (0..taps.len()).map(|_| None).collect(),
        }
    }
}

impl TapHook<'_> {
    /// Applies the taps at `point` to `value`: replaced where a tap says so, then captured.
    fn tap(&mut self, point: TapPoint, value: &mut Tensor) -> Result<()> {
        let Some(taps) = self.by_point.get(&point) else {
            return Ok(());
        };
        for &i in taps {
            let tap = &self.taps[i];
            if let Some(replacement) = &tap.replace {
                let replacement = replacement.f_narrow(0, self.start, self.len).map_err(|_| {
                    anyhow::anyhow!(
                        "the replacement for layer `{}` has batch size {}, not the inputs' {}",
                        tap.layer,
                        replacement.size().first().copied().unwrap_or(0),
                        self.start + self.len
                    )
                })?;
                if replacement.size() != value.size() {
                    bail!(
                        "the replacement for layer `{}` has shape {:?}, but the layer's {} has \
                         shape {:?}",
                        tap.layer,
                        replacement.size(),
                        if point.at_input { "input" } else { "output" },
                        value.size()
                    );
                }
                *value = replacement.to_kind(value.kind());
            }
            self.captured[i] = Some(value.shallow_clone());
        }
        Ok(())
    }
}

impl NodeHook for TapHook<'_> {
    fn before_node(
        &mut self,
        node: &NodeView<'_>,
        mut inputs: Vec<Option<Tensor>>,
    ) -> Result<Vec<Option<Tensor>>> {
        let point = TapPoint {
            node: node.index,
            at_input: true,
        };
        if let Some(Some(value)) = inputs.first_mut() {
            self.tap(point, value)?;
        }
        Ok(inputs)
    }

    fn after_node(
        &mut self,
        node: &NodeView<'_>,
        _inputs: &[Option<Tensor>],
        mut outputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        let point = TapPoint {
            node: node.index,
            at_input: false,
        };
        if let Some(value) = outputs.first_mut() {
            self.tap(point, value)?;
        }
        Ok(outputs)
    }
}
