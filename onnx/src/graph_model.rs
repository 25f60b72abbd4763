//! What a graph model (ONNX) offers beyond forward: its nodes in execution order, named
//! layers, and a forward pass that calls a [`NodeHook`] around every node.
//!
//! Layer taps (capture or replace a layer's output) and backward rules (host/src/rules/) are
//! both hooks: the executor knows nothing of either.

use anyhow::{bail, Result};
use tch::Tensor;

pub use crate::{Reach, Recorded};

/// `part` (its first `len <= size` examples of a batch) padded to exactly `size` examples
/// with copies of its last one: a model exported with a fixed batch size accepts no other, and
/// copies of a real example keep every value in the range the model was made for.
pub fn pad_batch(part: Tensor, size: i64) -> Result<Tensor> {
    let len = part.size()[0];
    if len >= size {
        return Ok(part);
    }
    let mut shape = part.size();
    shape[0] = size - len;
    let copies = part.f_narrow(0, len - 1, 1)?.f_expand(&shape, false)?;
    Ok(Tensor::f_cat(&[part, copies], 0)?)
}

/// One named layer: a PyTorch module path and the node whose output is the layer's output
/// (for a block, its last node).
#[derive(Clone, Debug)]
pub struct LayerInfo {
    /// The module path, e.g. `enc.conv`, `r2`.
    pub name: String,
    /// The ONNX op type of the node that produces the layer's output.
    pub op_type: String,
    /// Index of that node in execution order.
    pub node: usize,
}

/// Runs one node's op on given input values (used by rules that re-evaluate a node with
/// modified inputs or weights, e.g. LRP's gamma rule).
pub trait NodeOp {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>>;

    /// How the op's output positions depend on its inputs' positions, given the inputs of a
    /// forward pass (for shapes and attributes that depend on them). The default, `Global`,
    /// is always right; the other answers let incremental evaluation recompute less.
    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Global)
    }

    /// Whether the output depends on the values of input `i`, not only on its type (false
    /// for CastLike's `target_type`): a change there changes nothing.
    fn reads_values(&self, _i: usize) -> bool {
        true
    }

    /// The op without padding, on a window of its input (for [`Locality::Window`] ops); for
    /// [`Locality::Transposed`] ops, without cropping or output padding.
    fn run_valid(&self, _inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        bail!("this op has no unpadded form")
    }
}

/// Which input positions an op's output position reads, over the spatial axes (those after
/// `[N, C]`). Incremental evaluation (host/src/model/onnx/incremental.rs) uses it to
/// recompute only the part of each output that a local change of the input can reach.
#[derive(Clone, Debug, PartialEq)]
pub enum Locality {
    /// A change anywhere may change every output position.
    Global,
    /// Output position p reads position p of every input, with numpy broadcasting
    /// (elementwise ops, activations, Concat along channels).
    Pointwise,
    /// Output position p reads position p of input 0; the other inputs are per-channel
    /// parameters (BatchNormalization).
    Channelwise,
    /// A sliding window over input 0 (convolutions, pools).
    Window(SlidingWindow),
    /// Upsampling of input 0 by integer factors, shift-invariant: on a window of the input it
    /// gives the same values as on the whole input, except within one input position of the
    /// window's edges (nearest and linear with half-pixel or asymmetric coordinates).
    Upsample { factors: Vec<i64> },
    /// A transposed convolution over input 0, linear in it: input position i reaches the
    /// `extent` outputs from `i * stride - pad_begin` (`pad_begin`: what the op crops at the
    /// beginning; `pad_value` is unused).
    Transposed(SlidingWindow),
}

/// The geometry of a sliding window, per spatial axis.
#[derive(Clone, Debug, PartialEq)]
pub struct SlidingWindow {
    /// Input positions one output reads: `(kernel - 1) * dilation + 1`.
    pub extent: Vec<i64>,
    pub stride: Vec<i64>,
    /// Padding before the first input position.
    pub pad_begin: Vec<i64>,
    /// What padding stands for: 0 for convolutions, -inf for max-pooling.
    pub pad_value: f64,
}

/// A node as a hook sees it.
pub struct NodeView<'a> {
    /// Position in execution (topological) order.
    pub index: usize,
    /// The ONNX node name.
    pub name: &'a str,
    /// The ONNX op type (`Conv`, `Relu`, ...).
    pub op_type: &'a str,
    /// The module path the node belongs to ("" when unknown).
    pub layer: &'a str,
    /// ONNX value names of the inputs ("" for an omitted optional input) and outputs.
    pub input_names: &'a [String],
    pub output_names: &'a [String],
    /// For each input: true when it is an initializer or a constant (weights, shapes), not a
    /// value computed from the model's input.
    pub input_is_constant: &'a [bool],
    pub op: &'a dyn NodeOp,
}

impl NodeView<'_> {
    /// Runs this node's op on `inputs` (same arity as the node's inputs).
    pub fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        self.op.run(inputs)
    }
}

/// Sees every node of a forward pass. Both methods default to passing values through.
pub trait NodeHook {
    /// Called with a node's input values before it runs; returns the values it runs on.
    fn before_node(
        &mut self,
        _node: &NodeView<'_>,
        inputs: Vec<Option<Tensor>>,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(inputs)
    }

    /// Called with a node's inputs (as run) and outputs; returns the outputs the rest of the
    /// graph sees.
    fn after_node(
        &mut self,
        _node: &NodeView<'_>,
        _inputs: &[Option<Tensor>],
        outputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        Ok(outputs)
    }

    /// True once the hook has all it wants from the pass: [`GraphModel::forward_until`] then
    /// stops, skipping the nodes after this one (and their share of the backward pass);
    /// [`GraphModel::forward_hooked`] runs on to the output regardless.
    fn finished(&self) -> bool {
        false
    }
}

/// A model whose nodes can be observed and changed during forward.
pub trait GraphModel {
    /// Named layers in execution order.
    fn layer_list(&self) -> &[LayerInfo];

    /// The batch size the graph was exported with, when fixed.
    fn fixed_batch(&self) -> Option<i64>;

    /// The ONNX value name of the model output that `forward` returns (`--output-index`).
    fn output_name(&self) -> &str;

    /// The node at `index` (execution order), for rules that work after the forward pass.
    fn node(&self, index: usize) -> NodeView<'_>;

    /// How many nodes the graph has (`node` takes 0 to this, exclusive).
    fn node_count(&self) -> usize;

    /// Runs the graph on `inputs` `[B, ...]` calling `hook` around every node, and returns the
    /// selected output. With a fixed batch size, `B` must equal it (callers chunk).
    fn forward_hooked(&self, inputs: &Tensor, hook: &mut dyn NodeHook) -> Result<Tensor>;

    /// [`GraphModel::forward_hooked`] up to the node after which `hook.finished()`; computes
    /// no output, so it serves hooks that only capture (a layer's value for an objective).
    fn forward_until(&self, inputs: &Tensor, hook: &mut dyn NodeHook) -> Result<()>;

    /// Records every value of a forward pass on `base` (`[1, ...]`) for [`forward_near`];
    /// `None` where the graph cannot evaluate incrementally (a fixed batch size, no spatial
    /// axes).
    ///
    /// [`forward_near`]: GraphModel::forward_near
    fn record(&self, base: &Tensor) -> Result<Option<Recorded>>;

    /// The output for `inputs` `[B, ...]`, recomputing only what their differences from the
    /// recorded base reach (exact incremental evaluation, host/src/model/onnx/incremental.rs).
    fn forward_near(&self, recorded: &Recorded, inputs: &Tensor) -> Result<(Tensor, Reach)>;

    /// The layer called `name`; an unknown name is an error that suggests the nearest ones.
    fn layer(&self, name: &str) -> Result<&LayerInfo> {
        find_layer(self.layer_list(), name, "the model")
    }
}

/// Looks a layer up by name in `layers` of `model` (a path, for the message); unknown names
/// get the nearest ones suggested.
pub fn find_layer<'a>(layers: &'a [LayerInfo], name: &str, model: &str) -> Result<&'a LayerInfo> {
    if let Some(layer) = layers.iter().find(|l| l.name == name) {
        return Ok(layer);
    }
    if layers.is_empty() {
        bail!(
            "{model} has no named layers (an ONNX file needs the pkg.torch.onnx.name_scopes \
             metadata that torch.onnx.export(..., dynamo=True) writes)"
        );
    }
    bail!(
        "{model} has no layer `{name}`.{} `esegeta layers MODEL` lists them all",
        crate::suggest::did_you_mean(name, layers.iter().map(|l| l.name.as_str()))
    )
}
