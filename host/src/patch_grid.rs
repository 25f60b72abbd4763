//! The patch grid of a vision transformer's layer, for CAMs and layer methods on token layers
//! (`[B, 1 + h*w, C]`, or Swin's channels-last `[B, H, W, C]`): the spatial size of the patch
//! embedding's output, the convolution whose kernel equals its stride (ViT's `conv_proj`,
//! Swin's `features.0.0`, MONAI's `patch_embeddings`) that feeds the tapped value. The plugin
//! API (esegeta_plugin_api::tokens) reshapes the tokens onto it.

use std::collections::HashSet;

use anyhow::Result;
use tch::Tensor;

use crate::model::graph::{pad_batch, GraphModel, Locality, NodeHook, NodeView};
use crate::taps::{site, Site};

/// The nodes whose outputs the tapped value depends on, in execution order.
fn upstream(graph: &dyn GraphModel, site: &Site) -> Vec<usize> {
    let (last, mut needed): (usize, HashSet<String>) = match site {
        Site::Output(node) => (*node, HashSet::new()),
        Site::Input { value, nodes } => {
            let first = nodes.first().copied().unwrap_or(0);
            (first, HashSet::from([value.clone()]))
        }
    };
    let mut found = Vec::new();
    for i in (0..=last).rev() {
        let node = graph.node(i);
        let feeds = matches!(site, Site::Output(n) if *n == i)
            || node.output_names.iter().any(|o| needed.contains(o));
        if !feeds {
            continue;
        }
        found.push(i);
        for (name, &constant) in node.input_names.iter().zip(node.input_is_constant) {
            if !constant {
                needed.insert(name.clone());
            }
        }
    }
    found.reverse();
    found
}

/// Records the output grid of the patch-embedding candidates among `nodes`.
struct PatchHook {
    candidates: HashSet<usize>,
    /// The last candidate run that is a patch embedding, and its output's spatial size.
    grid: Option<(usize, Vec<i64>)>,
}

impl NodeHook for PatchHook {
    fn after_node(
        &mut self,
        node: &NodeView<'_>,
        inputs: &[Option<Tensor>],
        outputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        if !self.candidates.contains(&node.index) {
            return Ok(outputs);
        }
        // Kernel equal to stride, no padding: the patches tile the image without overlap.
        if let Ok(Locality::Window(w)) = node.op.locality(inputs) {
            let tiles = w.extent == w.stride
                && w.stride.iter().all(|&s| s > 1)
                && w.pad_begin.iter().all(|&p| p == 0);
            if tiles && self.grid.as_ref().is_none_or(|(i, _)| *i < node.index) {
                self.grid = Some((node.index, outputs[0].size()[2..].to_vec()));
            }
        }
        Ok(outputs)
    }
}

/// The patch grid feeding `layer`'s output (or input) at `inputs`, empty when no patch
/// embedding does; with `behind_transpose`, empty without running the model unless a
/// Transpose is upstream too.
pub fn patch_grid(
    graph: &dyn GraphModel,
    inputs: &Tensor,
    layer: &str,
    at_input: bool,
    behind_transpose: bool,
) -> Result<Vec<i64>> {
    let nodes = upstream(graph, &site(graph, layer, at_input)?);
    let op = |i: &usize| graph.node(*i).op_type.to_string();
    let candidates: HashSet<usize> = nodes.iter().copied().filter(|i| op(i) == "Conv").collect();
    let transposed = nodes.iter().any(|i| op(i) == "Transpose");
    if candidates.is_empty() || (behind_transpose && !transposed) {
        return Ok(Vec::new());
    }
    let mut hook = PatchHook {
        candidates,
        grid: None,
    };
    // One example is enough for shapes (padded to a fixed-batch export's size).
    let one = pad_batch(inputs.narrow(0, 0, 1), graph.fixed_batch().unwrap_or(1))?;
    // Only what the hook records is wanted, not the output.
    let _output = tch::no_grad(|| graph.forward_hooked(&one, &mut hook))?;
    Ok(hook.grid.map(|(_, grid)| grid).unwrap_or_default())
}
