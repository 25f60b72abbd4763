//! ONNX ops as libtorch calls. Each op is a small type built from its node's attributes when
//! the model loads (a bad attribute fails then) and run through `tch` on every forward, so
//! autograd, devices and precision come from libtorch.

mod activation;
mod arity;
mod constant;
mod conv;
mod elementwise;
mod gather;
mod index;
mod linear;
mod norm;
mod pool;
mod reduce;
mod resize;
mod select;
mod sequence;
mod shape;
mod space;

use anyhow::{anyhow, bail, Result};
use tch::{Device, Kind, Tensor};

use super::attrs::Attrs;
use super::proto::NodeProto;
use super::tensor::TensorReader;
use crate::graph_model::NodeOp;

/// What op constructors need beyond the node: the opset (attributes moved to inputs over
/// time), the floating kind the model runs in, its device, and the tensor reader.
pub struct BuildCtx<'a> {
    pub opset: i64,
    pub float_kind: Kind,
    pub device: Device,
    pub reader: &'a TensorReader,
}

/// The op types esegeta executes (for error messages).
pub const SUPPORTED: &[&str] = &[
    "Abs",
    "Add",
    "And",
    "ArgMax",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "CastLike",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "CumSum",
    "DepthToSpace",
    "Div",
    "Dropout",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "GroupNormalization",
    "HardSigmoid",
    "HardSwish",
    "Hardmax",
    "Identity",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "LpNormalization",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mish",
    "Mod",
    "Mul",
    "Neg",
    "NonZero",
    "Not",
    "OneHot",
    "Or",
    "PRelu",
    "Pad",
    "Pow",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "Round",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "SequenceAt",
    "Shape",
    "Sigmoid",
    "Sign",
    "Sin",
    "Size",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "SplitToSequence",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "TopK",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Upsample",
    "Where",
    "Xor",
];

/// Fails naming every node whose op esegeta does not run, grouped by op type, so that a user
/// learns all that a re-export must avoid at once, not one op per attempt. `layer` gives a
/// node's PyTorch module path (empty when the exporter wrote none).
pub fn check_supported<'a>(
    nodes: impl IntoIterator<Item = &'a NodeProto>,
    layer: impl Fn(&NodeProto) -> String,
) -> Result<()> {
    let mut missing: Vec<(String, Vec<String>)> = Vec::new();
    for node in nodes {
        let standard = node.domain.is_empty() || node.domain == "ai.onnx";
        if standard && SUPPORTED.contains(&node.op_type.as_str()) {
            continue;
        }
        let op = if standard {
            format!("`{}`", node.op_type)
        } else {
            format!("`{}` (domain `{}`)", node.op_type, node.domain)
        };
        let at = match layer(node) {
            l if l.is_empty() => format!("`{}`", node.name),
            l => format!("`{}` in layer `{l}`", node.name),
        };
        match missing.iter_mut().find(|(o, _)| *o == op) {
            Some((_, at_list)) => at_list.push(at),
            None => missing.push((op, vec![at])),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = missing
        .iter()
        .map(|(op, at)| {
            let shown: Vec<&str> = at.iter().take(3).map(String::as_str).collect();
            let more = match at.len().saturating_sub(3) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            let nodes = if at.len() == 1 { "node" } else { "nodes" };
            format!("{op} ({} {nodes}: {}{more})", at.len(), shown.join(", "))
        })
        .collect();
    bail!(
        "the model uses {} op type{} not supported by esegeta's ONNX importer: {}. \
         Re-export the model so that it avoids them (a newer or older opset, or \
         `tools/export_model.py`), or explain its TorchScript export as a black box. Supported \
         ops: {}",
        missing.len(),
        if missing.len() == 1 { "" } else { "s" },
        listed.join("; "),
        SUPPORTED.join(", ")
    )
}

/// Builds the op for `node`, or fails naming what is wrong with it.
pub fn build(node: &NodeProto, ctx: &BuildCtx) -> Result<Box<dyn NodeOp>> {
    if !node.domain.is_empty() && node.domain != "ai.onnx" {
        bail!(
            "the op `{}` of the domain `{}` is not supported (only standard ONNX ops are)",
            node.op_type,
            node.domain
        );
    }
    arity::check(node)?;
    let a = Attrs::new(node);
    let t = node.op_type.as_str();
    if let Some(op) = activation::build(t, &a, ctx)? {
        return Ok(op);
    }
    if let Some(op) = elementwise::build(t, &a, ctx)? {
        return Ok(op);
    }
    Ok(match t {
        "Conv" => Box::new(conv::Conv::new(&a)?),
        "ConvTranspose" => Box::new(conv::ConvTranspose::new(&a)?),
        "Gemm" => Box::new(linear::Gemm::new(&a)?),
        "MatMul" => Box::new(linear::MatMul),
        "Einsum" => Box::new(linear::Einsum::new(&a)?),
        "MaxPool" => Box::new(pool::MaxPool::new(&a, node.output.len())?),
        "AveragePool" => Box::new(pool::AveragePool::new(&a)?),
        "GlobalAveragePool" => Box::new(pool::GlobalPool { max: false }),
        "GlobalMaxPool" => Box::new(pool::GlobalPool { max: true }),
        "BatchNormalization" => Box::new(norm::BatchNorm::new(&a, node.output.len())?),
        "InstanceNormalization" => Box::new(norm::InstanceNorm::new(&a)?),
        "GroupNormalization" => Box::new(norm::GroupNorm::new(&a)?),
        "LayerNormalization" => Box::new(norm::LayerNorm::new(&a, node.output.len())?),
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1"
        | "ReduceL2" | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp" => {
            Box::new(reduce::Reduce::new(t, &a)?)
        }
        "ArgMax" => Box::new(reduce::ArgMax::new(&a)?),
        "CumSum" => Box::new(reduce::CumSum::new(&a)?),
        "LpNormalization" => Box::new(norm::LpNorm::new(&a)?),
        "GatherElements" => Box::new(gather::GatherElements::new(&a)?),
        "GatherND" => Box::new(gather::GatherND::new(&a)?),
        "ScatterElements" => Box::new(gather::ScatterElements::new(&a)?),
        "ScatterND" => Box::new(gather::ScatterND::new(&a)?),
        "TopK" => Box::new(select::TopK::new(&a, ctx.opset)?),
        "NonZero" => Box::new(select::NonZero),
        "OneHot" => Box::new(select::OneHot::new(&a)?),
        "Hardmax" => Box::new(select::Hardmax::new(&a, ctx.opset)?),
        "Trilu" => Box::new(select::Trilu::new(&a)?),
        "DepthToSpace" => Box::new(space::DepthToSpace::new(&a)?),
        "SpaceToDepth" => Box::new(space::SpaceToDepth::new(&a)?),
        "SplitToSequence" => Box::new(sequence::SplitToSequence::new(&a)?),
        "SequenceAt" => Box::new(sequence::SequenceAt),
        "Resize" => Box::new(resize::Resize::new(&a, ctx.opset)?),
        "Upsample" => Box::new(resize::Resize::upsample(&a)?),
        "Concat" => Box::new(index::Concat::new(&a)?),
        "Split" => Box::new(index::Split::new(&a, node.output.len())?),
        "Slice" => Box::new(index::Slice::new(&a)?),
        "Gather" => Box::new(index::Gather::new(&a)?),
        "Reshape" => Box::new(shape::Reshape::new(&a)?),
        "Flatten" => Box::new(shape::Flatten::new(&a)?),
        "Transpose" => Box::new(shape::Transpose::new(&a)?),
        "Squeeze" => Box::new(shape::Squeeze::new(&a)?),
        "Unsqueeze" => Box::new(shape::Unsqueeze::new(&a)?),
        "Expand" => Box::new(shape::Expand),
        "Tile" => Box::new(shape::Tile),
        "Pad" => Box::new(shape::Pad::new(&a)?),
        "Shape" => Box::new(constant::ShapeOf::new(&a)?),
        "Size" => Box::new(constant::SizeOf),
        "Constant" => Box::new(constant::Constant::new(&a, ctx)?),
        "ConstantOfShape" => Box::new(constant::ConstantOfShape::new(&a, ctx)?),
        "Range" => Box::new(constant::Range),
        "Cast" => Box::new(constant::Cast::new(&a, ctx)?),
        "CastLike" => Box::new(constant::CastLike),
        "Identity" => Box::new(constant::Identity),
        "Dropout" => Box::new(constant::Dropout {
            outputs: node.output.len(),
        }),
        _ => bail!(
            "the op type `{t}` is not supported by esegeta's ONNX importer; supported ops: {}",
            SUPPORTED.join(", ")
        ),
    })
}

/// The `i`-th input, which the op needs.
pub fn input<'t>(inputs: &'t [Option<Tensor>], i: usize, what: &str) -> Result<&'t Tensor> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| anyhow!("the input {i} ({what}) is missing"))
}

/// An optional input.
pub fn optional(inputs: &[Option<Tensor>], i: usize) -> Option<&Tensor> {
    inputs.get(i).and_then(Option::as_ref)
}

/// The values of an integer tensor (shapes, axes, pads), on the CPU.
pub fn ints(t: &Tensor) -> Result<Vec<i64>> {
    let flat = t.f_to_device(Device::Cpu)?.f_reshape([-1])?;
    Ok(Vec::<i64>::try_from(&flat)?)
}

/// The values of a floating tensor (scales), on the CPU.
pub fn floats(t: &Tensor) -> Result<Vec<f64>> {
    let flat = t.f_to_device(Device::Cpu)?.f_reshape([-1])?;
    Ok(Vec::<f64>::try_from(&flat)?)
}

/// An axis in `[0, rank)` from ONNX's `[-rank, rank)`.
pub fn axis(axis: i64, rank: i64) -> Result<i64> {
    let a = if axis < 0 { axis + rank } else { axis };
    if a < 0 || a >= rank {
        bail!("the axis {axis} is out of range for a tensor of rank {rank}");
    }
    Ok(a)
}

/// Axes from an attribute (older opsets) or the given input (newer ones).
pub fn axes_from(
    attr: &Option<Vec<i64>>,
    inputs: &[Option<Tensor>],
    i: usize,
) -> Result<Option<Vec<i64>>> {
    if let Some(a) = attr {
        return Ok(Some(a.clone()));
    }
    optional(inputs, i).map(ints).transpose()
}

pub fn is_floating(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}
