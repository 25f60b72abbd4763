//! esegeta's ONNX executor: an ONNX model (`.onnx`, with the external data file PyTorch's
//! exporter writes beside it) imported into a graph of libtorch ops and run node by node, so
//! that autograd, devices and precision come from libtorch, every layer can be tapped and
//! every node can take a backward rule (`graph_model`), and a change to the input can be
//! propagated through only the part of each layer it reaches (`incremental`).
//!
//! The host (`esegeta`) wraps [`OnnxModel`] as one of its models; nothing here knows of
//! methods, plugins or runs.

mod attrs;
mod graph;
pub mod graph_model;
mod incremental;
mod names;
mod ops;
mod proto;
pub mod suggest;
mod tensor;
pub mod torch_errors;

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use prost::Message;
use tch::{Device, Kind, Tensor};

use graph::Graph;
use graph_model::{find_layer, pad_batch, GraphModel, LayerInfo, NodeHook, NodeView};
pub use incremental::{Reach, Recorded};
use tensor::TensorReader;

pub struct OnnxModel {
    graph: Graph,
    name: String,
    output_index: usize,
    fixed_batch: Option<i64>,
}

/// The most nodes a graph may have: a model from elsewhere must not make the importer build
/// (and every method walk) millions of nodes.
pub const MAX_NODES: usize = 200_000;

/// A hook that changes nothing: plain forward.
struct PassThrough;

impl NodeHook for PassThrough {}

impl OnnxModel {
    /// Loads the model at `path` on `device` with floating initializers of `kind`, explaining
    /// graph output `output_index`.
    pub fn load(path: &Path, device: Device, kind: Kind, output_index: usize) -> Result<Self> {
        Self::load_output(path, device, kind, |names, model| {
            names
                .get(output_index)
                .map(|_| output_index)
                .ok_or_else(|| {
                    anyhow!(
                        "the model {model} has no output {output_index}: it has {} output(s)",
                        names.len()
                    )
                })
        })
    }

    /// [`OnnxModel::load`] with the output chosen by `pick` from the graph's output names
    /// (and the model's path, for its message).
    pub fn load_output(
        path: &Path,
        device: Device,
        kind: Kind,
        pick: impl FnOnce(&[String], &str) -> Result<usize>,
    ) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the model file {}", path.display()))?;
        let model = proto::ModelProto::decode(bytes.as_slice()).map_err(|e| {
            anyhow!(
                "{} is not an ONNX model (it does not parse as an ONNX protobuf: {e}); export \
                 the model with torch.onnx.export (tools/export_model.py does it)",
                path.display()
            )
        })?;
        let Some(graph) = model.graph.as_ref().filter(|g| !g.node.is_empty()) else {
            bail!(
                "{} is not an ONNX model: it holds no graph nodes; export the model with \
                 torch.onnx.export (tools/export_model.py does it)",
                path.display()
            );
        };
        if graph.node.len() > MAX_NODES {
            bail!(
                "{} holds a graph of {} nodes, more than esegeta imports ({MAX_NODES}; the \
                 largest vision transformers have tens of thousands): the file is damaged or \
                 not what it claims",
                path.display(),
                graph.node.len()
            );
        }
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(1, |o| o.version);
        let reader = TensorReader::new(path);
        let graph = Graph::build(graph, opset, device, kind, &reader)
            .with_context(|| format!("cannot load the ONNX model {}", path.display()))?;
        let names: Vec<String> = graph.outputs.iter().map(|(_, n)| n.clone()).collect();
        let output_index = pick(&names, &path.display().to_string())?;
        let fixed_batch = graph
            .input_shape
            .as_ref()
            .and_then(|s| s.first().copied().flatten());
        Ok(OnnxModel {
            graph,
            name: path.display().to_string(),
            output_index,
            fixed_batch,
        })
    }

    /// Checks the input against the declared shape (all but the batch dimension).
    fn check_input(&self, inputs: &Tensor) -> Result<()> {
        let Some(declared) = &self.graph.input_shape else {
            return Ok(());
        };
        let size = inputs.size();
        let matches = size.len() == declared.len()
            && size
                .iter()
                .zip(declared)
                .skip(1)
                .all(|(&s, d)| d.is_none_or(|d| d == s));
        if !matches {
            let shown: Vec<String> = declared
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Some(d) if i > 0 => d.to_string(),
                    _ => "B".to_string(),
                })
                .collect();
            bail!(
                "the model {} expects an input of shape [{}], got {size:?}; the graph was \
                 exported for that shape (B is the batch size), so crop, resize or patch the \
                 input to it (esegeta explain: --crop, --resize or --patch; a run config: \
                 preprocessing.crop, preprocessing.resize or execution.patching), or export \
                 the model with dynamic spatial dims (tools/export_model.py --dynamic-spatial)",
                self.name,
                shown.join(", ")
            );
        }
        Ok(())
    }

    /// A hooked pass runs the batch as given: with a fixed batch size, exactly that size.
    fn check_hooked_input(&self, inputs: &Tensor) -> Result<()> {
        self.check_input(inputs)?;
        if let Some(fixed) = self.fixed_batch {
            let batch = inputs.size()[0];
            if batch != fixed {
                bail!(
                    "the model {} was exported with a fixed batch size of {fixed}; a hooked \
                     forward needs batches of exactly that size, got {batch}",
                    self.name
                );
            }
        }
        Ok(())
    }

    fn forward_chunked(&self, inputs: &Tensor, chunk: i64) -> Result<Tensor> {
        let batch = inputs.size()[0];
        let mut outputs = Vec::new();
        let mut start = 0;
        while start < batch {
            let len = chunk.min(batch - start);
            let part = pad_batch(inputs.narrow(0, start, len), chunk)?;
            let out = self.graph.run(&part, &mut PassThrough, self.output_index)?;
            outputs.push(out.f_narrow(0, 0, len)?);
            start += len;
        }
        Ok(Tensor::f_cat(&outputs, 0)?)
    }
}

/// What the host's `Model` trait asks of a model, for its adapter.
impl OnnxModel {
    /// The chosen output for `inputs` `[B, ...]`, with autograd history when gradients are
    /// enabled; a fixed-batch export runs in chunks of its batch size.
    pub fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        self.check_input(inputs)?;
        match self.fixed_batch {
            Some(fixed) if inputs.size()[0] != fixed => self.forward_chunked(inputs, fixed),
            _ => self.graph.run(inputs, &mut PassThrough, self.output_index),
        }
    }

    /// The layers' names (PyTorch module paths), in execution order.
    pub fn layer_names(&self) -> Vec<String> {
        self.graph.layers.iter().map(|l| l.name.clone()).collect()
    }

    /// Floating initializers, less batch norms' running statistics (buffers, not parameters:
    /// re-initialising them as weights would make variances negative).
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        let statistics = self.graph.batch_norm_statistics();
        self.graph
            .initializers
            .iter()
            .filter(|(_, name, t)| ops::is_floating(t.kind()) && !statistics.contains(name))
            .map(|(_, name, t)| (name.clone(), t.shallow_clone()))
            .collect()
    }
}

impl GraphModel for OnnxModel {
    fn layer_list(&self) -> &[LayerInfo] {
        &self.graph.layers
    }

    fn fixed_batch(&self) -> Option<i64> {
        self.fixed_batch
    }

    fn output_name(&self) -> &str {
        &self.graph.outputs[self.output_index].1
    }

    fn node(&self, index: usize) -> NodeView<'_> {
        self.graph.view(index)
    }

    fn node_count(&self) -> usize {
        self.graph.nodes.len()
    }

    fn layer(&self, name: &str) -> Result<&LayerInfo> {
        find_layer(self.layer_list(), name, &format!("the model {}", self.name))
    }

    fn record(&self, base: &Tensor) -> Result<Option<Recorded>> {
        self.check_input(base)?;
        if self.fixed_batch.is_some() || base.size()[0] != 1 || base.dim() < 3 {
            return Ok(None);
        }
        Ok(Some(self.graph.record(base)?))
    }

    fn forward_near(&self, recorded: &Recorded, inputs: &Tensor) -> Result<(Tensor, Reach)> {
        self.check_input(inputs)?;
        self.graph.run_near(recorded, inputs, self.output_index)
    }

    fn forward_hooked(&self, inputs: &Tensor, hook: &mut dyn NodeHook) -> Result<Tensor> {
        self.check_hooked_input(inputs)?;
        self.graph.run(inputs, hook, self.output_index)
    }

    fn forward_until(&self, inputs: &Tensor, hook: &mut dyn NodeHook) -> Result<()> {
        self.check_hooked_input(inputs)?;
        self.graph.run_until(inputs, hook).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// Counts the nodes it sees, and has what it wants after `wanted` of them.
    struct Counter {
        seen: usize,
        wanted: usize,
    }

    impl NodeHook for Counter {
        fn after_node(
            &mut self,
            _node: &NodeView<'_>,
            _inputs: &[Option<Tensor>],
            outputs: Vec<Tensor>,
        ) -> Result<Vec<Tensor>> {
            self.seen += 1;
            Ok(outputs)
        }

        fn finished(&self) -> bool {
            self.seen >= self.wanted
        }
    }

    #[test]
    fn a_pass_until_the_hook_is_finished_skips_the_nodes_after() {
        let node = |op: &str, input: &str, output: &str| proto::NodeProto {
            op_type: op.into(),
            input: vec![input.into()],
            output: vec![output.into()],
            ..Default::default()
        };
        let value = |name: &str| proto::ValueInfoProto {
            name: name.into(),
            r#type: Some(proto::TypeProto {
                tensor_type: Some(proto::TensorTypeProto {
                    elem_type: 1,
                    shape: None,
                }),
            }),
        };
        let model = proto::ModelProto {
            ir_version: 8,
            opset_import: vec![proto::OperatorSetIdProto {
                domain: String::new(),
                version: 18,
            }],
            graph: Some(proto::GraphProto {
                node: vec![
                    node("Relu", "x", "y"),
                    node("Neg", "y", "z"),
                    node("Exp", "z", "w"),
                ],
                input: vec![value("x")],
                output: vec![value("w")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let path = std::env::temp_dir().join(format!("esegeta-until-{}.onnx", std::process::id()));
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let loaded = OnnxModel::load(&path, Device::Cpu, Kind::Float, 0);
        std::fs::remove_file(&path).unwrap();
        let model = loaded.unwrap();
        let x = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let mut until = Counter { seen: 0, wanted: 1 };
        model.forward_until(&x, &mut until).unwrap();
        assert_eq!(
            until.seen, 1,
            "the pass went on after the hook had finished"
        );
        let mut whole = Counter { seen: 0, wanted: 1 };
        let out = model.forward_hooked(&x, &mut whole).unwrap();
        assert_eq!(whole.seen, 3, "a hooked forward runs every node");
        assert!((out.double_value(&[0, 0]) - (-1f64).exp()).abs() < 1e-6);
    }

    #[test]
    fn a_graph_of_a_million_nodes_is_refused_before_it_is_built() {
        let node = proto::NodeProto {
            op_type: "Identity".into(),
            ..Default::default()
        };
        let model = proto::ModelProto {
            graph: Some(proto::GraphProto {
                node: vec![node; 1_000_000],
                ..Default::default()
            }),
            ..Default::default()
        };
        let path = std::env::temp_dir().join(format!("esegeta-nodes-{}.onnx", std::process::id()));
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let error = OnnxModel::load(&path, Device::Cpu, Kind::Float, 0)
            .err()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = format!("{error:#}");
        assert!(
            e.contains("a graph of 1000000 nodes") && e.contains("200000"),
            "{e}"
        );
    }
}
