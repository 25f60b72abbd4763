"""Build the broken ONNX files of tests/onnx_bad_files.rs in ``tests/fixtures/onnx_bad/``.

What it does
------------
Writes small graphs (with ``onnx.helper``, never through the checker: they are meant to fail
it) that esegeta must refuse with a sentence naming the node or tensor at fault: an op with
the wrong number of inputs, an initializer whose data disagrees with its declared shape, a
cycle, a value written twice or a graph output written by nothing, attribute values outside
the ONNX spec, a bias of the wrong shape, a sequence of unequal parts, and a convolution whose
weight does not fit its input (which libtorch refuses at run time).

How to rerun
------------
    ~/.cache/esegeta/venv/bin/pip install onnx   # once
    ~/.cache/esegeta/venv/bin/python tools/make_bad_onnx_fixtures.py

Seeded.
"""

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "onnx_bad"
RNG = np.random.default_rng(7)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def ints(values):
    return np.asarray(values, dtype=np.int64)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    x = oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 4, 4])
    y = oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    w = onnx.numpy_helper.from_array(randn(3, 2, 1, 1), "weight")

    def save(name, nodes, initializers=()):
        graph = oh.make_graph(nodes, name, [x], [y], initializer=list(initializers))
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 20)])
        onnx.save(model, OUT / f"{name}.onnx")

    # Conv without its weight, Add with a third operand.
    save("bad_conv_one_input", [oh.make_node("Conv", ["x"], ["y"], name="node_conv")])
    save("bad_add_three_inputs",
         [oh.make_node("Add", ["x", "x", "x"], ["y"], name="node_add")])
    # A weight declared [3, 2, 1, 1] (6 floats) that holds 4 (raw bytes) or 7 (typed values).
    def tensor(**fields):
        t = onnx.TensorProto(name="weight", data_type=onnx.TensorProto.FLOAT, dims=[3, 2, 1, 1])
        for k, v in fields.items():
            getattr(t, k).extend(v) if isinstance(v, list) else setattr(t, k, v)
        return t
    short = tensor(raw_data=randn(4).tobytes())
    save("bad_initializer_raw_shape", [oh.make_node("Conv", ["x", "weight"], ["y"],
                                                    name="node_conv")], [short])
    typed = tensor(float_data=randn(7).tolist())
    save("bad_initializer_typed_shape", [oh.make_node("Conv", ["x", "weight"], ["y"],
                                                      name="node_conv")], [typed])
    # Attribute values the ONNX spec does not define, or esegeta does not run.
    save("bad_lp_normalization_p3",
         [oh.make_node("LpNormalization", ["x"], ["y"], name="node_lp", p=3)])
    idx = onnx.numpy_helper.from_array(ints([[0]]), "indices")
    upd = onnx.numpy_helper.from_array(randn(1, 2, 4, 4), "updates")
    save("bad_scatter_nd_reduction_mean",
         [oh.make_node("ScatterND", ["x", "indices", "updates"], ["y"], name="node_scatter",
                       reduction="mean")], [idx, upd])
    save("bad_depth_to_space_mode",
         [oh.make_node("DepthToSpace", ["x"], ["y"], name="node_d2s", blocksize=2, mode="RCD")])
    # A bias of two values per channel that differ: not the exporter's repeated zero bias.
    bias = onnx.numpy_helper.from_array(randn(3, 2), "bias")
    save("bad_conv_bias_shape", [oh.make_node("Conv", ["x", "weight", "bias"], ["y"],
                                              name="node_conv")], [w, bias])
    # Loads, but libtorch refuses it at run time: the weight wants 5 input channels, not 2.
    wide = onnx.numpy_helper.from_array(randn(3, 5, 1, 1), "weight")
    save("bad_conv_channels", [oh.make_node("Conv", ["x", "weight"], ["y"], name="node_conv")],
         [wide])
    # Two nodes write `y`; a node overwrites the initializer `weight`; the output `y` unwritten.
    save("bad_value_written_twice", [oh.make_node("Relu", ["x"], ["y"], name="node_relu"),
                                     oh.make_node("Neg", ["x"], ["y"], name="node_neg")])
    save("bad_initializer_overwritten", [
        oh.make_node("Relu", ["x"], ["weight"], name="node_relu"),
        oh.make_node("Conv", ["x", "weight"], ["y"], name="node_conv")], [w])
    save("bad_output_unwritten", [oh.make_node("Relu", ["x"], ["r"], name="node_relu")])
    # A sequence of parts of different lengths, which esegeta cannot keep as one tensor.
    lengths = onnx.numpy_helper.from_array(ints([1, 3]), "lengths")
    position = onnx.numpy_helper.from_array(ints(0), "position")
    save("bad_split_to_sequence_unequal", [
        oh.make_node("SplitToSequence", ["x", "lengths"], ["parts"], name="node_split", axis=2),
        oh.make_node("SequenceAt", ["parts", "position"], ["y"], name="node_at")],
        [lengths, position])
    # node_add reads the output of node_relu, which reads node_add's.
    save("bad_cycle", [
        oh.make_node("Add", ["x", "r"], ["a"], name="node_add"),
        oh.make_node("Relu", ["a"], ["r"], name="node_relu"),
        oh.make_node("Conv", ["r", "weight"], ["y"], name="node_conv"),
    ], [w])


if __name__ == "__main__":
    main()
