"""The model zoo: real torchvision and MONAI architectures, exported and explained by esegeta.

For each architecture (seeded random weights, a small input) this script exports TorchScript
and ONNX with tools/export_model.py's own functions, then checks what a user would: esegeta
loads each file, its forward equals PyTorch's (within 1e-5 of the output's scale), its
saliency and Grad-CAM (on the architecture's last convolution, ONNX only: TorchScript has no
layers) equal Captum 0.9's within 1e-3 of the map's scale. Classifiers explain their top
class; segmenters class 1 through the argmax wrapper (esegeta's `--wrapper argmax`, Captum on
tools/make_fixtures.py's ArgmaxScores). Each saliency is also compared with a float64
PyTorch gradient, so that a float32 disagreement is told from an error, and esegeta's own
fp64 saliency with it (within 1e-5: no rounding left to blame).

    . tools/env.sh && pip install torch==2.13.0 torchvision==0.28.0 monai==1.6.1 einops
    python tools/make_zoo.py [--only SUBSTR] [--out DIR] [--table docs/models.md]

Exits non-zero when a row fails; `--table` writes the table of docs/models.md. The exported
files go to DIR (default target/zoo, not committed: some are tens of MB).
"""

import argparse
import copy
import json
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_model  # noqa: E402
import make_fixtures as mf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ESEGETA = ROOT / "target" / "release" / "esegeta"
FORWARD_RTOL, MAP_RTOL = 1e-5, 1e-3
# esegeta --precision fp64 against PyTorch's float64 gradient (the map is written as float32).
FP64_RTOL = 1e-5


def tv(name, **kw):
    def build():
        import torchvision.models as m
        return getattr(m, name)(weights=None, **kw)
    return build


def tv_video(name):
    def build():
        import torchvision.models.video as v
        return getattr(v, name)(weights=None, num_classes=10)
    return build


def small_vit():
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                             hidden_dim=32, mlp_dim=64, num_classes=10)


def small_swin():
    from torchvision.models.swin_transformer import SwinTransformer
    return SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4],
                           window_size=[4, 4], num_classes=10)


def monai(name, **kw):
    def build():
        import monai.networks.nets as nets
        return getattr(nets, name)(**kw)
    return build


C10 = {"num_classes": 10}
# (name, factory, input shape, task)
ZOO = [
    ("resnet18", tv("resnet18", **C10), (1, 3, 64, 64), "classification"),
    ("vgg11_bn", tv("vgg11_bn", **C10), (1, 3, 64, 64), "classification"),
    ("densenet121", tv("densenet121", **C10), (1, 3, 64, 64), "classification"),
    ("mobilenet_v2", tv("mobilenet_v2", **C10), (1, 3, 64, 64), "classification"),
    ("mobilenet_v3_small", tv("mobilenet_v3_small", **C10), (1, 3, 64, 64), "classification"),
    ("efficientnet_b0", tv("efficientnet_b0", **C10), (1, 3, 64, 64), "classification"),
    ("convnext_tiny", tv("convnext_tiny", **C10), (1, 3, 64, 64), "classification"),
    ("regnet_y_400mf", tv("regnet_y_400mf", **C10), (1, 3, 64, 64), "classification"),
    ("shufflenet_v2_x0_5", tv("shufflenet_v2_x0_5", **C10), (1, 3, 64, 64), "classification"),
    ("squeezenet1_1", tv("squeezenet1_1", **C10), (1, 3, 64, 64), "classification"),
    ("swin (small)", small_swin, (1, 3, 32, 32), "classification"),
    ("vit (small)", small_vit, (1, 3, 32, 32), "classification"),
    ("r3d_18", tv_video("r3d_18"), (1, 3, 8, 32, 32), "classification"),
    ("r2plus1d_18", tv_video("r2plus1d_18"), (1, 3, 8, 32, 32), "classification"),
    ("monai UNet 3D", monai("UNet", spatial_dims=3, in_channels=1, out_channels=2,
                            channels=(8, 16, 32), strides=(2, 2)), (1, 1, 32, 32, 32),
     "segmentation"),
    ("monai BasicUNet 2D", monai("BasicUNet", spatial_dims=2, in_channels=1, out_channels=2,
                                 features=(8, 8, 16, 32, 64, 8)), (1, 1, 64, 64),
     "segmentation"),
    ("monai DynUNet 3D", monai("DynUNet", spatial_dims=3, in_channels=1, out_channels=2,
                               kernel_size=[3, 3, 3], strides=[1, 2, 2],
                               upsample_kernel_size=[2, 2], filters=[8, 16, 32]),
     (1, 1, 32, 32, 32), "segmentation"),
    ("monai SegResNet 3D", monai("SegResNet", spatial_dims=3, in_channels=1, out_channels=2,
                                 init_filters=8), (1, 1, 32, 32, 32), "segmentation"),
    ("monai AttentionUnet 2D", monai("AttentionUnet", spatial_dims=2, in_channels=1,
                                     out_channels=2, channels=(8, 16, 32), strides=(2, 2)),
     (1, 1, 64, 64), "segmentation"),
    ("monai VNet 3D", monai("VNet", spatial_dims=3, in_channels=1, out_channels=2),
     (1, 1, 32, 32, 32), "segmentation"),
    ("monai UNETR 3D", monai("UNETR", in_channels=1, out_channels=2, img_size=(32, 32, 32),
                             feature_size=8, hidden_size=48, mlp_dim=96, num_heads=4),
     (1, 1, 32, 32, 32), "segmentation"),
    ("monai SwinUNETR 3D", monai("SwinUNETR", in_channels=1, out_channels=2, feature_size=12,
                                 spatial_dims=3), (1, 1, 64, 64, 64), "segmentation"),
    ("monai HighResNet 3D", monai("HighResNet", spatial_dims=3, in_channels=1,
                                  out_channels=2), (1, 1, 24, 24, 24), "segmentation"),
    ("monai DenseNet121 3D", monai("DenseNet121", spatial_dims=3, in_channels=1,
                                   out_channels=3), (1, 1, 32, 32, 32), "classification"),
    ("monai ResNet10 3D", monai("resnet10", spatial_dims=3, n_input_channels=1,
                                num_classes=3), (1, 1, 32, 32, 32), "classification"),
    ("monai EfficientNetBN 2D", monai("EfficientNetBN", model_name="efficientnet-b0",
                                      pretrained=False, spatial_dims=2, in_channels=1,
                                      num_classes=3), (1, 1, 64, 64), "classification"),
]

# One of each kind, for tests/zoo.rs: a CNN, a transformer, a video net, 3D segmenters with
# group norm and with attention.
QUICK = ("resnet18", "vit (small)", "r3d_18", "monai SegResNet 3D", "monai UNETR 3D")


def last_conv(model):
    kinds = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    convs = [p for p, m in model.named_modules() if isinstance(m, kinds) and p]
    return convs[-1] if convs else None


def no_zero_weights(model):
    """torchvision's ViT starts its head at zero (its output, and every map, would be 0):
    seeded small weights instead, for a map worth comparing."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.abs().max() > 0:
                nn.init.normal_(p, std=0.02)
    return model


def scores_fn(model, task):
    return model if task == "classification" else mf.ArgmaxScores(model)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def esegeta(*args):
    done = subprocess.run([str(ESEGETA), *map(str, args)], capture_output=True, text=True)
    return done.returncode == 0, (done.stderr.strip().splitlines() or [""])[-1]


def references(model, x, task, layer):
    """Captum's saliency and Grad-CAM in float32, the saliency in float64, and the target."""
    from captum.attr import LayerGradCam, Saliency

    f = scores_fn(model, task)
    with torch.no_grad():
        target = int(f(x).argmax(1)[0]) if task == "classification" else 1
    sal = Saliency(f).attribute(x.clone(), target=target).detach().numpy()
    model64 = copy.deepcopy(model).double()
    f64 = scores_fn(model64, task)
    sal64 = Saliency(f64).attribute(x.clone().double(), target=target).detach().numpy()
    cams = (None, None)
    if layer:
        cams = tuple(
            LayerGradCam(fn, dict(m.named_modules())[layer])
            .attribute(x.clone().to(dtype), target=target).detach().numpy()
            for fn, m, dtype in ((f, model, torch.float32), (f64, model64, torch.float64)))
    return target, sal, sal64, cams


def export(model, x, out):
    args = SimpleNamespace(opset=None, optimize=False, dynamic_spatial=False)
    files, errors = {}, {}
    try:
        dynamic = export_model.export_onnx(model, x, out.with_suffix(".onnx"), args)
        files["ONNX"] = (out.with_suffix(".onnx"), "dynamic batch" if dynamic else "fixed")
    except Exception as e:  # noqa: BLE001 - the row says why
        errors["ONNX"] = f"export fails: {export_model.first_line(e)}"
    try:
        export_model.trace(model, x, out.with_suffix(".pt"))
        files["TorchScript"] = (out.with_suffix(".pt"), "traced")
    except Exception as e:  # noqa: BLE001
        errors["TorchScript"] = f"trace fails: {export_model.first_line(e)}"
    return files, errors


def check_backend(kind, path, folder, x, want, refs, task, layer):
    target, sal, sal64, (cam, cam64) = refs
    if not np.abs(sal).max() > 0:
        return {"error": "Captum's saliency is zero everywhere: nothing to compare"}
    np.save(folder / "x.npy", x.numpy())
    row = {}
    ok, err = esegeta("doctor", path, "--input", folder / "x.npy", "--save-output",
                      folder / "y.npy")
    if not (folder / "y.npy").exists():
        return {"error": f"does not load or run: {err}"}
    row["forward"] = rel(np.load(folder / "y.npy"), want)
    (folder / "y.npy").unlink()
    task_args = ["--task", task] + (["--wrapper", "argmax"] if task == "segmentation" else [])
    common = ["explain", "--model", path, "--input", folder / "x.npy", "--target", target,
              *task_args]
    ok, err = esegeta(*common, "--method", "captum.saliency", "--out", folder / "s.npy")
    if not ok:
        row["error"] = f"saliency fails: {err}"
        return row
    ours = np.load(folder / "s.npy")
    row["saliency"], row["saliency_vs_f64"] = rel(ours, sal), rel(ours, sal64)
    row["captum_vs_f64"] = rel(sal, sal64)
    # esegeta's own float64 run against PyTorch's float64 gradient: no float32 rounding left,
    # so what remains is an error (or the float32 constants an export keeps).
    ok, err = esegeta(*common, "--method", "captum.saliency", "--precision", "fp64",
                      "--out", folder / "s64.npy")
    if ok:
        row["fp64_vs_f64"] = rel(np.load(folder / "s64.npy"), sal64)
    elif kind == "TorchScript" and "integer buffers" in err:
        # libtorch's Module::to casts index buffers too; esegeta says so, and the ONNX row
        # has the fp64 figure.
        row["fp64_note"] = "TorchScript: index buffers cast by libtorch (fp64 on ONNX)"
    else:
        row["error"] = f"fp64 saliency fails: {err}"
        return row
    if kind == "ONNX" and layer:
        ok, err = esegeta(*common, "--method", "captum.layer_grad_cam", "--layer", layer,
                          "--out", folder / "c.npy")
        if ok:
            ours = np.load(folder / "c.npy")
            row["grad_cam"], row["grad_cam_vs_f64"] = rel(ours, cam), rel(ours, cam64)
            row["captum_grad_cam_vs_f64"] = rel(cam, cam64)
        else:
            row["error"] = f"Grad-CAM on `{layer}` fails: {err}"
    return row


def passed(row):
    if "error" in row:
        return False
    # A map off Captum's float32 one but as close to float64 as Captum's is: noise, not error.
    sal_ok = row["saliency"] <= MAP_RTOL or row["saliency_vs_f64"] <= 2 * row["captum_vs_f64"]
    cam_ok = "grad_cam" not in row or row["grad_cam"] <= MAP_RTOL \
        or row["grad_cam_vs_f64"] <= 2 * row["captum_grad_cam_vs_f64"]
    fp64_ok = row.get("fp64_vs_f64", 0.0) <= FP64_RTOL
    return row["forward"] <= FORWARD_RTOL and sal_ok and cam_ok and fp64_ok


def run_one(name, factory, shape, task, out):
    torch.manual_seed(0)
    model = no_zero_weights(factory().eval())
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = export_model.outputs(model(x))[0].numpy()
    layer = last_conv(model)
    folder = out / name.replace(" ", "_").replace("(", "").replace(")", "")
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files, errors = export(model, x, folder / "model")
    refs = references(model, x, task, layer)
    rows = {}
    for kind in ("ONNX", "TorchScript"):
        if kind in errors:
            rows[kind] = {"error": errors[kind]}
            continue
        path, how = files[kind]
        rows[kind] = check_backend(kind, path, folder, x, want, refs, task, layer)
        rows[kind]["export"] = how
    return {"name": name, "input": list(shape), "task": task, "layer": layer, "rows": rows}


def fmt(v):
    return "-" if v is None else f"{v:.1e}"


HEADER = """# Models: what loads and runs

Generated by `python tools/make_zoo.py --table docs/models.md` (torch 2.13.0, torchvision
0.28.0, MONAI 1.6.1, Captum 0.9.0; seeded random weights, small inputs). Each architecture is
exported by tools/export_model.py's own functions (ONNX with the dynamo exporter, a dynamic
batch where it allows; TorchScript traced with gradients) and run by esegeta:

- forward: esegeta's output against PyTorch's, max |difference| over the output's scale
  (tolerance 1e-5);
- saliency: `captum.saliency` against Captum's `Saliency` on the same module, over the map's
  scale (tolerance 1e-3), and both against a float64 PyTorch gradient: where esegeta's map is
  off Captum's float32 one but as close to float64 as Captum's is, the difference is float32
  noise (near-ties of the argmax wrapper, say), not an error;
- fp64 saliency: `esegeta explain --precision fp64` against the float64 PyTorch gradient
  (tolerance 1e-5): with float32 rounding gone on both sides, what remains would be an error
  in an op or its backward;
- Grad-CAM: `captum.layer_grad_cam` on the architecture's last convolution (ONNX only:
  TorchScript files have no layers), against Captum's `LayerGradCam` (tolerance 1e-3).

Float32 and ReLU kinks: a ReLU network's gradient is piecewise constant in which units are
active, so where one pre-activation lies within float32 rounding of zero, two float32
computations (or float32 and float64) can take opposite sides and the map moves by a discrete
amount. On MONAI's SegResNet 3D with seeds 1-6, esegeta's ONNX saliency lay 3e-3 to 2e-2 of
scale from float64 on seeds 1, 4 and 5, and PyTorch's own float32 model (Captum) on seeds 3
and 5, each otherwise at 2e-5 to 2e-4; with the argmax mask unchanged. `python
tools/float32_kinks.py` shows the cause: each large error comes with one or two ReLU inputs
whose sign differs from float64's, whichever float32 kernel computes the group norm, and none
without. Per-op gradients (tests/onnx_ops.rs) agree with PyTorch's to float32 rounding, and
in float64 the whole model's saliency equals PyTorch's float64 gradient (the fp64 column:
SegResNet 3.4e-8 on both backends, where Captum's own float32 map lies 4.1e-2 from it).

Classifiers explain their top class; segmenters class 1 through the argmax wrapper
(`--task segmentation --wrapper argmax`). A failing row names the op or feature that is
missing, as esegeta's own error says it.

"""


def table(results):
    lines = [
        "| model | input | backend | export | forward | saliency vs Captum | vs float64 "
        "(Captum's) | fp64 saliency vs float64 | Grad-CAM vs Captum, vs float64 (Captum's) "
        "(layer) | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for kind, row in r["rows"].items():
            status = "ok" if passed(row) else ("**" + row.get("error", "outside tolerance")
                                               .replace("|", "/") + "**")
            cam = (f"{fmt(row.get('grad_cam'))}, {fmt(row.get('grad_cam_vs_f64'))} "
                   f"({fmt(row.get('captum_grad_cam_vs_f64'))}) (`{r['layer']}`)"
                   if "grad_cam" in row else "-")
            f64 = (f"{fmt(row.get('saliency_vs_f64'))} ({fmt(row.get('captum_vs_f64'))})"
                   if "saliency_vs_f64" in row else "-")
            lines.append(
                f"| {r['name']} | {'x'.join(map(str, r['input'][1:]))} | {kind} | "
                f"{row.get('export', '-')} | {fmt(row.get('forward'))} | "
                f"{fmt(row.get('saliency'))} | {f64} | "
                f"{row.get('fp64_note') or fmt(row.get('fp64_vs_f64'))} | {cam} "
                f"| {status} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="architectures whose name contains this")
    parser.add_argument("--quick", action="store_true",
                        help=f"only {', '.join(QUICK)} (what the test suite runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "zoo")
    parser.add_argument("--table", type=Path, help="write the markdown table here")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results, failed = [], []
    for name, factory, shape, task in ZOO:
        if args.only.lower() not in name.lower() or (args.quick and name not in QUICK):
            continue
        start = time.monotonic()
        try:
            r = run_one(name, factory, shape, task, args.out)
        except Exception as e:  # noqa: BLE001 - one architecture must not stop the zoo
            traceback.print_exc()
            r = {"name": name, "input": list(shape), "task": task, "layer": None,
                 "rows": {"PyTorch": {"error": f"the reference fails: {e}"}}}
        results.append(r)
        for kind, row in r["rows"].items():
            verdict = "ok" if passed(row) else "FAILED"
            if verdict != "ok":
                failed.append(f"{name} ({kind})")
            print(f"{name:28s} {kind:12s} {verdict:6s} {json.dumps(row)}", flush=True)
        print(f"{name}: {time.monotonic() - start:.0f} s", flush=True)
    if args.table:
        args.table.write_text(HEADER + table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if failed:
        sys.exit("zoo: failed: " + ", ".join(failed))
    print(f"zoo: {len(results)} architectures, every row ok")


if __name__ == "__main__":
    main()
