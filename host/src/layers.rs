//! `esegeta layers`: a graph model's layer names with the op type that produces each, and,
//! given an input, the shape of each layer's output.

use std::path::Path;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::model::graph::{GraphModel, NodeHook, NodeView};

/// The command that exports a PyTorch model to ONNX (and TorchScript) for layer methods.
pub const EXPORT_COMMAND: &str = "python tools/export_model.py path/to/model.py:make_model \
     --weights weights.pt --input-shape 1,1,64,64,64 --out model";

/// Records the shape of every node's first output.
struct Shapes(Vec<Option<Vec<i64>>>);

impl NodeHook for Shapes {
    fn after_node(
        &mut self,
        node: &NodeView<'_>,
        _inputs: &[Option<Tensor>],
        outputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        if self.0.len() <= node.index {
            self.0.resize(node.index + 1, None);
        }
        self.0[node.index] = outputs.first().map(Tensor::size);
        Ok(outputs)
    }
}

/// One layer: its name, the op that makes it, and with an input, its output's shape.
#[derive(serde::Serialize, Clone, Debug)]
pub struct Row {
    pub name: String,
    pub op: String,
    pub shape: Option<Vec<i64>>,
}

/// The layers of a graph model (`esegeta layers`, and the GUI's `/api/layers`).
pub fn rows(
    model_path: &Path,
    input: Option<&Path>,
    output: &crate::model::Output,
    device: Device,
) -> Result<Vec<Row>> {
    let model = crate::model::load_output(model_path, device, Kind::Float, output)?;
    let Some(graph) = model.graph() else {
        bail!(
            "{} is a TorchScript model, a black box without named layers; export the PyTorch \
             model to ONNX to list and use its layers: {EXPORT_COMMAND}",
            model_path.display()
        );
    };
    let x = match input {
        Some(path) => Some(crate::io::load_input(path)?.tensor.to_device(device)),
        None => None,
    };
    rows_of(graph, x.as_ref(), model_path)
}

/// [`rows`] of a loaded graph, with shapes when `x` is given (`model_path` names it in errors).
pub fn rows_of(graph: &dyn GraphModel, x: Option<&Tensor>, model_path: &Path) -> Result<Vec<Row>> {
    let shapes = match x {
        Some(x) => {
            if let Some(b) = graph
                .fixed_batch()
                .filter(|&b| x.size().first() != Some(&b))
            {
                bail!(
                    "{} was exported with a fixed batch size of {b}; give an input with that \
                     batch size",
                    model_path.display()
                );
            }
            let mut hook = Shapes(Vec::new());
            let _output = tch::no_grad(|| graph.forward_hooked(x, &mut hook))?;
            Some(hook.0)
        }
        None => None,
    };
    Ok(graph
        .layer_list()
        .iter()
        .map(|layer| Row {
            shape: shapes
                .as_ref()
                .and_then(|s| s.get(layer.node).cloned().flatten()),
            name: layer.name.to_string(),
            op: layer.op_type.to_string(),
        })
        .collect())
}

/// The table `esegeta layers` prints.
pub fn table(
    model_path: &Path,
    input: Option<&Path>,
    output: &crate::model::Output,
    device: Device,
) -> Result<String> {
    Ok(format_rows(
        &rows(model_path, input, output, device)?,
        input.is_some(),
    ))
}

/// `layers` as a table: name, op and, `with_shapes`, output shape.
pub fn format_rows(layers: &[Row], with_shapes: bool) -> String {
    let width = layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:width$}  {:22}", "layer", "op");
    if with_shapes {
        out.push_str("  output shape");
    }
    out = out.trim_end().to_string() + "\n";
    for layer in layers {
        let mut line = format!("{:width$}  {:22}", layer.name, layer.op);
        if with_shapes {
            match &layer.shape {
                Some(s) => line.push_str(&format!("  {s:?}")),
                None => line.push_str("  -"),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
