//! Models users bring (issue 19): a TorchScript file traced under `torch.no_grad()` records
//! PyTorch's attention fast path, which has no derivative; esegeta must say so in a sentence
//! (not a libtorch backtrace), `esegeta doctor` must say which families still run, and
//! tools/export_model.py must write a file whose gradients are right. The model is the tiny
//! ViT of tests/fixtures/attention (tools/make_attention_fixtures.py, with Captum's saliency).

#[macro_use]
mod common;

use std::process::Command;

use common::*;

fn attention(name: &str) -> String {
    fixture("attention")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_gradient_through_an_op_without_a_derivative_fails_with_a_sentence() {
    let out = scratch("export-nograd").join("never.npy");
    let mut cmd = explain_cmd(
        &attention("vit_nograd.pt"),
        &attention("x.npy"),
        "captum.saliency",
    );
    cmd.arg("--out").arg(&out);
    let stderr = fails(&mut cmd);
    for part in [
        "`aten::_transformer_encoder_layer_fwd` has no derivative",
        "re-export the model with tools/export_model.py",
    ] {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("frame #"),
        "a backtrace reached the user:\n{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one sentence:\n{stderr}");
    assert!(!out.exists());
}

#[test]
fn doctor_says_only_black_box_methods_run_on_it() {
    let mut cmd = esegeta();
    cmd.args([
        "doctor",
        &attention("vit_nograd.pt"),
        "--input",
        &attention("x.npy"),
    ]);
    let stderr = fails(&mut cmd);
    for part in [
        "gradient fails: the model's op `aten::_transformer_encoder_layer_fwd`",
        "black-box methods (occlusion, ablation, Shapley, LIME, RISE): run",
        "gradient methods (saliency, integrated gradients, SmoothGrad, ...): do not run",
        "only black-box methods",
    ] {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
}

/// The torch virtualenv's Python (tools/env.sh puts it first on PATH and sets VIRTUAL_ENV).
fn python() -> Command {
    let venv = std::env::var_os("VIRTUAL_ENV").map(std::path::PathBuf::from);
    Command::new(venv.map_or("python3".into(), |v| v.join("bin").join("python")))
}

/// Re-exported by the tool from the module and its weights, the TorchScript file runs
/// saliency equal to Captum's on the module (within 1e-3 of scale), and doctor passes it.
#[test]
fn export_model_writes_a_differentiable_trace() {
    let dir = scratch("export-tool");
    let root = fixtures().join("../..");
    let mut export = python();
    export
        .arg(root.join("tools/export_model.py"))
        .arg(format!("{}:make_model", attention("tiny_vit.py")))
        .args(["--weights", &attention("tiny_vit_weights.pt")])
        .args(["--input-shape", "1,3,8,8", "--out"])
        .arg(dir.join("vit"));
    let (ok, stdout, stderr) = run(&mut export);
    assert!(ok, "export_model.py failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("vit.pt (1, 3, 8, 8) output 0"),
        "checked with esegeta:\n{stdout}"
    );
    let model = dir.join("vit.pt").to_string_lossy().into_owned();
    let out = dir.join("saliency.npy");
    let mut cmd = explain_cmd(&model, &attention("x.npy"), "captum.saliency");
    cmd.args(["--params", r#"{"abs": false}"#, "--out"])
        .arg(&out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    let (diff, scale) = max_diff(
        &load(&out),
        &load(&fixture("attention/saliency_target0.npy")),
    );
    assert!(
        diff <= 1e-3 * scale + 1e-6,
        "max|ours - Captum| = {diff:e} (scale {scale:e})"
    );
    let mut doctor = esegeta();
    doctor.args(["doctor", &model, "--input", &attention("x.npy")]);
    let (ok, stdout, stderr) = run(&mut doctor);
    assert!(ok, "{stdout}{stderr}");
}

/// `esegeta explain` of saliency on a model of tests/fixtures/outputs with `extra` flags:
/// the map, or the error.
fn saliency(model: &str, extra: &[&str]) -> Result<tch::Tensor, String> {
    let dir = fixture("outputs");
    let out = scratch(&format!("outputs-{model}-{}", extra.join("-"))).join("map.npy");
    let mut cmd = esegeta();
    cmd.current_dir(&dir)
        .args(["explain", "--model", model, "--input", "x.npy"])
        .args([
            "--method",
            "captum.saliency",
            "--params",
            r#"{"abs": false}"#,
        ])
        .args(["--target", "2"])
        .args(extra)
        .arg("--out")
        .arg(&out);
    let (ok, _, stderr) = run(&mut cmd);
    if ok {
        Ok(load(&out))
    } else {
        Err(stderr)
    }
}

fn close_to(map: &tch::Tensor, reference: &str) {
    let (diff, scale) = max_diff(map, &load(&fixture("outputs").join(reference)));
    // Float32 gradients of a tiny model: rounding only.
    assert!(
        diff <= 1e-3 * scale + 1e-6,
        "{reference}: {diff:e} (scale {scale:e})"
    );
}

/// Structured outputs (tools/make_output_fixtures.py, Captum's saliency of each head): a
/// TorchScript model returning a dict, HuggingFace's style, explains `logits` by default and
/// any key by name or position; an ONNX model's outputs are picked by name; a name that is not
/// there is refused with the list of what is.
#[test]
fn dict_and_named_outputs_are_picked_by_name_or_position() {
    close_to(
        &saliency("dict_outputs.pt", &[]).unwrap(),
        "saliency_logits2.npy",
    );
    let by_name = saliency("dict_outputs.pt", &["--output", "features"]).unwrap();
    close_to(&by_name, "saliency_features2.npy");
    let by_index = saliency("dict_outputs.pt", &["--output-index", "1"]).unwrap();
    close_to(&by_index, "saliency_features2.npy");
    let onnx = saliency("named_outputs.onnx", &["--output", "features"]).unwrap();
    close_to(&onnx, "saliency_features2.npy");
    close_to(
        &saliency("named_outputs.onnx", &[]).unwrap(),
        "saliency_logits2.npy",
    );
    for model in ["dict_outputs.pt", "named_outputs.onnx"] {
        let error = saliency(model, &["--output", "probs"]).unwrap_err();
        for part in [
            "no output named `probs`",
            "0: `logits`, 1: `features`",
            "--output NAME",
        ] {
            assert!(
                error.contains(part),
                "{model}: expected {part:?} in:\n{error}"
            );
        }
    }
}
