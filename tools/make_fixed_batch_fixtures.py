"""Fixed-batch ONNX exports of the layer fixtures' models, for the rule-based methods.

A model exported without a dynamic batch (``torch.onnx.export(model, (x,), dynamo=True)`` on
an example of 2) accepts only batches of 2: its flatten is a Reshape to ``[2, -1]``. esegeta
records a rule pass on such a model in chunks of 2 and joins them (host/src/rules/chunks.rs).
This script rebuilds the seeded PyTorch modules of ``tools/make_layer_fixtures.py`` (same
seeds, same weights; nothing there is rewritten) and exports each with a fixed batch of 2 into
``tests/fixtures/layers/<model>_fixed_b2.onnx``. The Captum references the tests compare with
are that script's own, made on the same modules: the maps must not depend on how the model
was exported. tests/fixed_batch_rules.rs runs them.

    . tools/env.sh && python tools/make_fixed_batch_fixtures.py

Needs torch, captum 0.9 (make_layer_fixtures imports it), onnx and onnxscript.
"""

import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_layer_fixtures as mlf  # noqa: E402

MODELS = ("classifier2d.onnx", "segmenter3d.onnx", "rules2d.onnx")
BATCH = 2


def modules():
    """The layer fixtures' modules, rebuilt without writing any of that script's files."""
    mlf.save_npy = lambda name, tensor, role: name
    mlf.export_onnx = lambda model, example, name, check_batches=(1, 3): None
    return mlf.make_models(mlf.make_inputs())


def export_fixed(model, name):
    example = mlf.make_inputs()["s3d_x.npy" if name.startswith("segmenter") else "c2d_x.npy"]
    example = example.expand((BATCH,) + tuple(example.shape[1:])).contiguous()
    path = mlf.OUT / name.replace(".onnx", f"_fixed_b{BATCH}.onnx")
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, verbose=False)
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == BATCH, f"{path.name}: the batch is not fixed ({dims})"
    print(f"{path.name}: input {dims}, {len(graph.node)} nodes")


def main():
    warnings.filterwarnings("ignore")
    mlf.mf.setup_determinism()
    models = modules()
    for name in MODELS:
        export_fixed(models[name], name)


if __name__ == "__main__":
    main()
