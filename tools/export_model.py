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
PyTorch module on a random input with esegeta itself (``esegeta doctor --save-output``, when
the binary is built; else the TorchScript file with torch and the ONNX file not at all).

The ONNX export tries a dynamic batch first and falls back to the example's fixed batch,
saying so (esegeta runs fixed-batch models in chunks). The TorchScript file is written even
when the ONNX export fails. Tracing runs with gradients enabled and an input that requires
them, so that modules with an inference fast path (``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer``) record their differentiable path: a trace under
``torch.no_grad()`` records ops without a derivative, and every gradient method then fails.
When neither export works, one sentence names the module that failed.

``--dynamic-spatial`` also makes the ONNX graph's spatial dimensions dynamic, where the model
allows it, so that esegeta takes inputs of other sizes without ``--resize`` or ``--patch``;
a model that fixes them (a flatten before a linear layer, a reshape to a constant) is exported
for the example's shape instead, with a message saying so.

Needs torch, plus ``onnx`` and ``onnxscript`` for the ONNX export
(``pip install onnx onnxscript``); without them only the TorchScript file is written.
"""

import argparse
import contextlib
import importlib.util
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ESEGETA = Path(__file__).resolve().parents[1] / "target" / "release" / "esegeta"


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
    """Whether the export's outputs reproduce the module's, printing each comparison."""
    ok = True
    for k, (a, b) in enumerate(zip(outputs(got), outputs(want))):
        a = torch.as_tensor(a)
        err = (a - b).abs().max().item()
        scale = b.abs().max().item()
        status = "ok" if err <= 1e-4 * scale + 1e-5 else "DIFFERS"
        print(f"{name} output {k}: max|diff| = {err:.2e} (scale {scale:.2e}) {status}")
        ok = ok and status == "ok"
    return ok


@contextlib.contextmanager
def module_stack(model):
    """The path of the modules running at each moment, so that a failure can name the module
    it happened in (the innermost one still on the stack)."""
    stack, handles = [], []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(
            lambda m, i, name=name: stack.append(name or "the model's own forward")))
        # A hook's return value replaces the module's output: return nothing.
        handles.append(module.register_forward_hook(lambda m, i, o: stack.pop() and None))
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def has_onnx():
    missing = [n for n in ("onnx", "onnxscript") if importlib.util.find_spec(n) is None]
    if missing:
        print(f"warning: no ONNX export (it needs {' and '.join(missing)}: "
              f"{sys.executable} -m pip install {' '.join(missing)}); writing TorchScript only",
              file=sys.stderr)
    return not missing


def export_onnx(model, example, path, args):
    """Exports with a dynamic batch (and with --dynamic-spatial dynamic spatial dims where the
    model allows), falling back to the example's fixed shape; returns what is dynamic:
    "batch and spatial dims", "batch" or "" (fixed)."""
    batch = torch.export.Dim("batch", min=1, max=1024)

    def export(dynamic_shapes):
        # torch.export specialises a dimension whose example size is 1: a dynamic batch needs
        # an example of two.
        x = example if dynamic_shapes is None or example.shape[0] > 1 else example.repeat(
            (2,) + (1,) * (example.dim() - 1))
        with torch.no_grad():
            torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["input"],
                              dynamic_shapes=(dynamic_shapes,), opset_version=args.opset,
                              optimize=args.optimize)
        if dynamic_shapes is not None and not onnx_batch_is_dynamic(path):
            raise ValueError("the exporter fixed the batch dimension")

    attempts = []
    if args.dynamic_spatial:
        # DYNAMIC, not AUTO: a dim the model fixes is an error here, not a silent constant.
        spatial = {d: torch.export.Dim.DYNAMIC for d in range(2, example.dim())}
        attempts.append(("batch and spatial dims", {0: batch, **spatial}))
    attempts += [("batch", {0: batch}), ("", None)]
    for k, (dynamic, shapes) in enumerate(attempts):
        try:
            if dynamic == "batch and spatial dims":
                # The exporter may keep dims symbolic under a relation between them (a flatten
                # before a linear layer fixes H*W): only a forward at another size shows that.
                with torch.no_grad():
                    model(torch.rand(other_shape(example.shape)))
            export(shapes)
            return dynamic
        except Exception as e:  # noqa: BLE001 - torch names the dim or the op and the reason
            if k + 1 == len(attempts):
                raise
            nxt = attempts[k + 1][0]
            then = (f"a dynamic {nxt}" if nxt else
                    f"the example's fixed shape {tuple(example.shape)} instead (esegeta runs a "
                    f"fixed-batch model in chunks; crop, resize or patch inputs to its size)")
            print(f"warning: the ONNX export with a dynamic {dynamic} failed "
                  f"({first_line(e)}); exporting with {then}", file=sys.stderr)
    raise AssertionError("unreachable")


def onnx_batch_is_dynamic(path):
    import onnx
    dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return bool(dim) and not dim[0].HasField("dim_value")


def other_shape(shape):
    """A second input size, keeping each spatial dim's power-of-two factors (up to 32) as
    pooling and strided layers need."""
    shape = tuple(shape)
    return shape[:2] + tuple(s + math.gcd(s, 32) for s in shape[2:])


def esegeta_output(path, example):
    """The model file's raw output for `example`, computed by esegeta itself (`esegeta doctor
    --save-output`); None when esegeta is not built, with a warning."""
    binary = ESEGETA if ESEGETA.is_file() else shutil.which("esegeta")
    if binary is None:
        print(f"warning: esegeta is not built (make build), so {path} is not checked with it",
              file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", example.detach().numpy())
        done = subprocess.run([str(binary), "doctor", str(path), "--input", f"{tmp}/x.npy",
                               "--save-output", f"{tmp}/y.npy"], capture_output=True, text=True)
        if not Path(f"{tmp}/y.npy").exists():
            sys.exit(f"error: esegeta cannot run {path}:\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            print(f"warning: {done.stderr.strip()}", file=sys.stderr)
        return torch.from_numpy(np.load(f"{tmp}/y.npy"))


def check_file(path, model, example, want=None):
    """Checks `path` against the module on `example` with esegeta (or, for TorchScript
    without esegeta, with torch)."""
    if want is None:
        with torch.no_grad():
            want = outputs(model(example))
    got = esegeta_output(path, example)
    if got is None and path.suffix == ".pt":
        with torch.no_grad():
            got = torch.jit.load(str(path))(example)
    if got is not None and not check(f"{path.name} {tuple(example.shape)}", got, want):
        sys.exit(f"error: {path} does not reproduce the PyTorch module")


def trace(model, example, path):
    """TorchScript of `model` traced with gradients enabled (see the module's docs)."""
    traced = torch.jit.trace(model, example.clone().requires_grad_(True), check_trace=False)
    traced.save(str(path))


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

    model = load_factory(args.model)()
    if args.weights:
        load_weights(model, args.weights)
    model.eval()
    shape = tuple(int(s) for s in args.input_shape.split(","))
    example = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        want = model(example)

    failures = {}
    onnx_path = args.out.with_suffix(".onnx")
    if has_onnx():
        with module_stack(model) as stack:
            try:
                dynamic = export_onnx(model, example, onnx_path, args)
            except Exception as e:  # noqa: BLE001 - reported with the module, below
                failures["ONNX"] = (stack[-1] if stack else None, e)
        if "ONNX" not in failures:
            print(f"wrote {onnx_path}" + (f" (dynamic {dynamic})" if dynamic
                                          else " (fixed shape)"))
            check_file(onnx_path, model, example, outputs(want))
            if dynamic == "batch and spatial dims":
                check_file(onnx_path, model, torch.rand(
                    other_shape(shape), generator=torch.Generator().manual_seed(1)))

    ts_path = args.out.with_suffix(".pt")
    with module_stack(model) as stack:
        try:
            trace(model, example, ts_path)
        except Exception as e:  # noqa: BLE001 - reported with the module, below
            failures["TorchScript"] = (stack[-1] if stack else None, e)
    if "TorchScript" not in failures:
        check_file(ts_path, model, example, outputs(want))
        print(f"wrote {ts_path}")
    for kind, (module, e) in failures.items():
        where = f" in module `{module}`" if module else ""
        print(f"warning: the {kind} export failed{where}: {first_line(e)}", file=sys.stderr)
    if "TorchScript" in failures and not onnx_path.exists():
        module, e = failures["TorchScript"]
        sys.exit(f"error: neither export works: "
                 f"{'module `' + module + '` fails: ' if module else ''}{first_line(e)}")
    if onnx_path.exists():
        print(f"layers: esegeta layers {onnx_path} --input <an input file>")


if __name__ == "__main__":
    main()
