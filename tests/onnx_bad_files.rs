//! Broken ONNX files (made by tools/make_bad_onnx_fixtures.py) are refused while loading, with a
//! sentence that names the node or tensor at fault: an op with the wrong number of inputs, an
//! initializer whose data disagrees with its declared shape, a graph with a cycle, a value
//! written twice or an output written by nothing, and attribute values outside the ONNX spec
//! (or outside what esegeta runs); and a node that libtorch refuses at run time fails with a
//! sentence, not libtorch's backtrace.

mod common;

use common::*;
use esegeta::model;
use tch::{Device, Kind};

/// The load error of `tests/fixtures/onnx_bad/<name>.onnx`, with its whole chain of context.
fn load_error(name: &str) -> String {
    let path = fixture("onnx_bad").join(format!("{name}.onnx"));
    match model::load(&path, Device::Cpu, Kind::Float, 0) {
        Ok(_) => panic!("{name}.onnx loaded, but it is broken"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "`{part}` is missing from: {message}"
        );
    }
}

#[test]
fn an_op_with_too_few_inputs_is_refused_by_node() {
    let e = load_error("bad_conv_one_input");
    assert_mentions(
        &e,
        &[
            "`node_conv`",
            "`Conv` takes 2 to 3 input(s)",
            "this node has 1 (`x`)",
        ],
    );
}

#[test]
fn an_op_with_too_many_inputs_is_refused_by_node() {
    let e = load_error("bad_add_three_inputs");
    assert_mentions(&e, &["`node_add`", "`Add` takes 2 input(s)", "has 3"]);
}

#[test]
fn an_initializer_whose_bytes_disagree_with_its_shape_is_refused_by_name() {
    let e = load_error("bad_initializer_raw_shape");
    assert_mentions(
        &e,
        &[
            "`weight`",
            "[3, 2, 1, 1]",
            "should hold 24 bytes but holds 16",
            "damaged",
        ],
    );
}

#[test]
fn an_initializer_whose_values_disagree_with_its_shape_is_refused_by_name() {
    let e = load_error("bad_initializer_typed_shape");
    assert_mentions(&e, &["`weight`", "[3, 2, 1, 1]", "damaged"]);
}

#[test]
fn a_cycle_is_refused_naming_its_nodes() {
    let e = load_error("bad_cycle");
    assert_mentions(
        &e,
        &[
            "the graph has a cycle",
            "`node_add` (Add, number 0) reads `r` from the node `node_relu` (Relu, number 1)",
            "which reads `a` from the node `node_add`",
            "acyclic",
        ],
    );
}

#[test]
fn attribute_values_outside_the_spec_are_refused_by_node() {
    let e = load_error("bad_lp_normalization_p3");
    assert_mentions(
        &e,
        &[
            "`node_lp`",
            "`LpNormalization`",
            "p must be 1 or 2",
            "got 3",
        ],
    );
    let e = load_error("bad_scatter_nd_reduction_mean");
    assert_mentions(&e, &["`node_scatter`", "`reduction` is `mean`", "`add`"]);
    let e = load_error("bad_depth_to_space_mode");
    assert_mentions(&e, &["`node_d2s`", "`mode` is `RCD`", "`DCR`, `CRD`"]);
}

/// The forward error of `tests/fixtures/onnx_bad/<name>.onnx` on zeros of the declared shape.
fn forward_error(name: &str) -> String {
    let path = fixture("onnx_bad").join(format!("{name}.onnx"));
    let model = model::load(&path, Device::Cpu, Kind::Float, 0).unwrap();
    let x = tch::Tensor::zeros([1, 2, 4, 4], (Kind::Float, Device::Cpu));
    format!("{:#}", model.forward(&x).err().unwrap())
}

/// A node libtorch refuses at run time fails with libtorch's sentence and the node, without
/// the C++ backtrace libtorch appends.
#[test]
fn an_op_libtorch_refuses_fails_with_a_sentence_not_a_backtrace() {
    let e = forward_error("bad_conv_channels");
    assert_mentions(&e, &["`node_conv` (Conv)", "[3, 5, 1, 1]", "channels"]);
    assert!(
        !e.contains("Exception raised from") && !e.contains("frame #"),
        "{e}"
    );
}

/// A bias of several different values per channel is not the exporter's repeated zero bias.
#[test]
fn a_conv_bias_of_the_wrong_shape_is_refused() {
    let e = forward_error("bad_conv_bias_shape");
    assert_mentions(
        &e,
        &[
            "`node_conv` (Conv)",
            "bias has shape [3, 2]",
            "one value per",
        ],
    );
}

#[test]
fn a_value_written_twice_is_refused_naming_both_writers() {
    let e = load_error("bad_value_written_twice");
    assert_mentions(
        &e,
        &[
            "the value `y` is written by two nodes",
            "`node_relu` (Relu, number 0)",
            "`node_neg` (Neg, number 1)",
        ],
    );
    let e = load_error("bad_initializer_overwritten");
    assert_mentions(
        &e,
        &["`node_relu` (Relu, number 0)", "`weight`", "initializer"],
    );
}

#[test]
fn a_graph_output_no_node_writes_is_refused_by_name() {
    let e = load_error("bad_output_unwritten");
    assert_mentions(&e, &["the graph output `y` is written by no node"]);
}

/// esegeta keeps a sequence as one tensor of equal parts, and says so for any other.
#[test]
fn a_sequence_of_unequal_parts_is_refused_by_node() {
    let e = forward_error("bad_split_to_sequence_unequal");
    assert_mentions(
        &e,
        &[
            "`node_split` (SplitToSequence)",
            "different lengths [1, 3]",
            "not supported",
        ],
    );
}
