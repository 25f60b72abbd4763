"""Export a PyTorch model for esegeta: to ONNX (layer methods, backward rules, `esegeta layers`)
with a dynamic batch dimension, and to TorchScript.

Usage
-----
    python tools/export_model.py path/to/model.py:make_model \\
        --weights weights.pt --input-shape 1,1,64,64,64 --out models/unet

``path/to/model.py:make_model`` names a Python file and a callable in it that returns the
``nn.Module`` (a class works too, when it needs no arguments). ``--weights`` is an optional
state_dict (``torch.save(model.state_dict(), ...)``, a checkpoint dict with a ``state_dict``
key, or a TorchScript file whose parameters are used). ``--input-shape`` is one example
input's shape with its batch dimension. It writes ``<out>.onnx`` (with ``<out>.onnx.data``
when the exporter keeps the weights outside) and ``<out>.pt``, and checks both against the
PyTorch module on a random input.

Needs torch, plus ``onnx`` and ``onnxscript`` for the ONNX export
(``pip install onnx onnxscript``).
"""

import argparse
import importlib.util
import sys
from pathlib import Path

import torch


def load_factory(spec):
    file, _, name = spec.rpartition(":")
    if not file or not name:
        sys.exit(f"error: give the model as path/to/file.py:factory, got `{spec}`")
    path = Path(file)
    if not path.is_file():
        sys.exit(f"error: the model file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.parent.resolve()))
    module_spec.loader.exec_module(module)
    if not hasattr(module, name):
        sys.exit(f"error: {path} defines no `{name}`")
    return getattr(module, name)


def load_weights(model, path):
    try:
        state = torch.jit.load(str(path)).state_dict()
    except Exception:  # noqa: BLE001 - not TorchScript: a pickled state_dict or checkpoint
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"error: {path} does not fit the model: missing {missing}, unexpected {unexpected}")


def outputs(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def check(name, got, want):
    for k, (a, b) in enumerate(zip(outputs(got), outputs(want))):
        a = torch.as_tensor(a)
        err = (a - b).abs().max().item()
        scale = b.abs().max().item()
        status = "ok" if err <= 1e-4 * scale + 1e-5 else "DIFFERS"
        print(f"{name} output {k}: max|diff| = {err:.2e} (scale {scale:.2e}) {status}")
        if status != "ok":
            sys.exit(f"error: the {name} export does not reproduce the PyTorch module")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="path/to/file.py:factory")
    parser.add_argument("--weights", type=Path, help="state_dict, checkpoint or TorchScript file")
    parser.add_argument("--input-shape", required=True,
                        help="example input shape with the batch dimension, e.g. 1,1,64,64,64")
    parser.add_argument("--out", type=Path, required=True, help="output path without extension")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (the exporter's default)")
    args = parser.parse_args()

    model = load_factory(args.model)()
    if args.weights:
        load_weights(model, args.weights)
    model.eval()
    shape = tuple(int(s) for s in args.input_shape.split(","))
    example = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        want = model(example)

    onnx_path = args.out.with_suffix(".onnx")
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(onnx_path), dynamo=True, input_names=["input"],
                          dynamic_shapes=({0: batch},), opset_version=args.opset)
    print(f"wrote {onnx_path}")
    try:
        from onnx.reference import ReferenceEvaluator
        session = ReferenceEvaluator(str(onnx_path))
        check("ONNX", session.run(None, {session.input_names[0]: example.numpy()}), outputs(want))
    except ImportError:
        print("onnx is not installed: the ONNX file was not checked")

    ts_path = args.out.with_suffix(".pt")
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    traced.save(str(ts_path))
    check("TorchScript", torch.jit.load(str(ts_path))(example), outputs(want))
    print(f"wrote {ts_path}")
    print(f"layers: esegeta layers {onnx_path} --input <an input file>")


if __name__ == "__main__":
    main()
