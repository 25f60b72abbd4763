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

``--dynamic-spatial`` also makes the ONNX graph's spatial dimensions dynamic, where the model
allows it, so that esegeta takes inputs of other sizes without ``--resize`` or ``--patch``;
a model that fixes them (a flatten before a linear layer, a reshape to a constant) is exported
for the example's shape instead, with a message saying so.

Needs torch, plus ``onnx`` and ``onnxscript`` for the ONNX export
(``pip install onnx onnxscript``).
"""

import argparse
import importlib.util
import math
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


def require_onnx():
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        sys.exit(f"error: the ONNX export needs {' and '.join(missing)}: "
                 f"pip install {' '.join(missing)} (into the Python that has torch, "
                 f"e.g. {sys.executable} -m pip install {' '.join(missing)})")


def export_onnx(model, example, path, args):
    """Exports with a dynamic batch, and with --dynamic-spatial dynamic spatial dims where the
    model allows; returns whether the spatial dims are dynamic."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes = {0: batch}
    if args.dynamic_spatial:
        # DYNAMIC, not AUTO: a dim the model fixes is an error here, not a silent constant.
        shapes.update({d: torch.export.Dim.DYNAMIC for d in range(2, example.dim())})

    def export(dynamic_shapes):
        with torch.no_grad():
            torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["input"],
                              dynamic_shapes=(dynamic_shapes,), opset_version=args.opset,
                              optimize=args.optimize)

    if not args.dynamic_spatial:
        export(shapes)
        return False
    try:
        # The exporter may keep dims symbolic under a relation between them (a flatten
        # before a linear layer fixes H*W): only a forward at another size shows that.
        with torch.no_grad():
            model(torch.rand(other_shape(example.shape)))
        export(shapes)
        return True
    except Exception as e:  # noqa: BLE001 - torch names the dim or the op and the reason
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"warning: the model does not take other spatial sizes ({reason}); exporting "
              f"for the example's spatial shape {tuple(example.shape[2:])} instead, so crop, "
              f"resize or patch inputs to it (esegeta explain --resize / --patch)",
              file=sys.stderr)
        export({0: batch})
        return False


def other_shape(shape):
    """A second input size, keeping each spatial dim's power-of-two factors (up to 32) as
    pooling and strided layers need."""
    shape = tuple(shape)
    return shape[:2] + tuple(s + math.gcd(s, 32) for s in shape[2:])


def check_onnx(path, model, example):
    from onnx.reference import ReferenceEvaluator
    session = ReferenceEvaluator(str(path))
    with torch.no_grad():
        want = outputs(model(example))
    check(f"ONNX {tuple(example.shape)}",
          session.run(None, {session.input_names[0]: example.numpy()}), want)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="path/to/file.py:factory")
    parser.add_argument("--weights", type=Path, help="state_dict, checkpoint or TorchScript file")
    parser.add_argument("--input-shape", required=True,
                        help="example input shape with the batch dimension, e.g. 1,1,64,64,64")
    parser.add_argument("--out", type=Path, required=True, help="output path without extension")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (the exporter's default)")
    parser.add_argument("--optimize", action="store_true",
                        help="let the exporter optimise the graph: it folds each batch norm into "
                             "the conv before it (that layer then has no node of its own, and the "
                             "conv's weight name holds the folded values) and merges equal "
                             "weights; off by default so that layers and parameter names match "
                             "the PyTorch module")
    parser.add_argument("--dynamic-spatial", action="store_true",
                        help="make the ONNX graph's spatial dims dynamic where the model allows "
                             "(checked at a second input size); else the graph takes only the "
                             "example's spatial shape")
    args = parser.parse_args()
    require_onnx()

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
    dynamic = export_onnx(model, example, onnx_path, args)
    print(f"wrote {onnx_path}" + (" (dynamic batch and spatial dims)" if dynamic
                                  else " (dynamic batch)"))
    check_onnx(onnx_path, model, example)
    if dynamic:
        check_onnx(onnx_path, model,
                   torch.rand(other_shape(shape), generator=torch.Generator().manual_seed(1)))

    ts_path = args.out.with_suffix(".pt")
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    traced.save(str(ts_path))
    check("TorchScript", torch.jit.load(str(ts_path))(example), outputs(want))
    print(f"wrote {ts_path}")
    print(f"layers: esegeta layers {onnx_path} --input <an input file>")


if __name__ == "__main__":
    main()
