//! How many inputs each op takes, checked when the model loads, so that a damaged or
//! hand-edited graph is refused with its node named instead of failing mid-forward (or,
//! worse, running with an input ignored).
//!
//! The bounds are the widest over the opsets esegeta reads (Clip took one input before
//! opset 11 and up to three after), so no valid export is refused; the ops themselves then
//! read the inputs of their opset.

use anyhow::{bail, Result};

use crate::proto::NodeProto;

/// Fewest and most inputs (`None`: any number) of `op`, or `None` for an op not listed.
fn bounds(op: &str) -> Option<(usize, Option<usize>)> {
    let one = (1, Some(1));
    let two = (2, Some(2));
    Some(match op {
        "Constant" => (0, Some(0)),
        "Abs" | "ArgMax" | "AveragePool" | "Cast" | "Ceil" | "Celu" | "ConstantOfShape" | "Cos"
        | "DepthToSpace" | "Elu" | "Erf" | "Exp" | "Flatten" | "Floor" | "Gelu"
        | "GlobalAveragePool" | "GlobalMaxPool" | "Hardmax" | "HardSigmoid" | "HardSwish"
        | "Identity" | "IsInf" | "IsNaN" | "LeakyRelu" | "Log" | "LogSoftmax"
        | "LpNormalization" | "MaxPool" | "Mish" | "Neg" | "NonZero" | "Not" | "Reciprocal"
        | "Relu" | "Round" | "Selu" | "Shape" | "Sigmoid" | "Sign" | "Sin" | "Size" | "Softmax"
        | "Softplus" | "Softsign" | "SpaceToDepth" | "Sqrt" | "Tanh" | "ThresholdedRelu"
        | "Transpose" => one,
        "Add" | "And" | "CastLike" | "CumSum" | "Div" | "Equal" | "Expand" | "Gather"
        | "GatherElements" | "GatherND" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual"
        | "MatMul" | "Mod" | "Mul" | "Or" | "PRelu" | "Pow" | "Sub" | "Tile" | "Xor"
        | "SequenceAt" => two,
        "Range"
        | "OneHot"
        | "Where"
        | "ScatterElements"
        | "ScatterND"
        | "InstanceNormalization"
        | "GroupNormalization" => (3, Some(3)),
        "BatchNormalization" => (5, Some(5)),
        "Conv" | "ConvTranspose" | "Gemm" => (2, Some(3)),
        "LayerNormalization" => (2, Some(3)),
        "Clip" | "Dropout" => (1, Some(3)),
        "Pad" | "Resize" => (1, Some(4)),
        "Slice" => (1, Some(5)),
        "Reshape" | "Split" | "SplitToSequence" | "Squeeze" | "Unsqueeze" | "Upsample" | "TopK"
        | "Trilu" | "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd"
        | "ReduceL1" | "ReduceL2" | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp" => {
            (1, Some(2))
        }
        "Concat" | "Einsum" | "Max" | "Min" | "Mean" | "Sum" => (1, None),
        _ => return None,
    })
}

/// Refuses a node whose input count its op does not take, or whose required input is
/// unnamed.
pub fn check(node: &NodeProto) -> Result<()> {
    let Some((min, max)) = bounds(&node.op_type) else {
        return Ok(());
    };
    let got = node.input.len();
    let takes = match max {
        Some(max) if max == min => format!("{min}"),
        Some(max) => format!("{min} to {max}"),
        None => format!("{min} or more"),
    };
    if got < min || max.is_some_and(|max| got > max) {
        bail!(
            "the op `{}` takes {takes} input(s), but this node has {got} ({}): the file is \
             damaged or not a valid ONNX graph; re-export the model",
            node.op_type,
            if node.input.is_empty() {
                "none".to_string()
            } else {
                node.input
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    if let Some(i) = node.input[..min].iter().position(String::is_empty) {
        bail!(
            "the op `{}` needs its input {i}, but this node leaves it unnamed: the file is \
             damaged or not a valid ONNX graph; re-export the model",
            node.op_type
        );
    }
    Ok(())
}
