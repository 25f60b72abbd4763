//! The layer methods against Captum 0.9 on small ONNX models: the cases and reference maps in
//! tests/fixtures/layers come from tools/make_layer_fixtures.py, which ran Captum itself (each
//! case names its layer by module path, passed as `--layer`).
//!
//! Deterministic cases: `max|ours - captum| <= 1e-3 * max|captum| + 1e-6`.
//! Sampled cases (layer GradientSHAP): `max|ours - captum| <= 3 * spread`, where spread is the
//! largest deviation among Captum's own runs with 4 other seeds (recorded by the script).
//! Convergence deltas: `|ours - captum| <= 1e-3 * sum|captum map| + 1e-5`.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use serde_json::Value;

/// The methods this file checks; the fixtures also hold the rule methods' cases.
const METHODS: &[&str] = &[
    "captum.layer_activation",
    "captum.layer_gradient_x_activation",
    "captum.layer_grad_cam",
    "captum.layer_conductance",
    "captum.internal_influence",
    "captum.layer_integrated_gradients",
    "captum.layer_gradient_shap",
    "captum.layer_feature_ablation",
];

fn layers_dir() -> PathBuf {
    fixture("layers")
}

fn cases() -> Vec<Value> {
    fixture_cases("layers/cases.json", "")
        .into_iter()
        .filter(|c| METHODS.contains(&c["method"].as_str().unwrap()))
        .collect()
}

fn case(name: &str) -> Value {
    fixture_case(cases(), name)
}

/// `esegeta explain` for one case, run from the fixtures' folder (their paths are relative
/// to it).
fn explain(c: &Value, out: &std::path::Path) -> std::process::Command {
    let mut cmd = esegeta();
    cmd.current_dir(layers_dir());
    cmd.args(["explain", "--model", c["model"].as_str().unwrap()])
        .args(["--input", c["input"].as_str().unwrap()])
        .args(["--method", c["method"].as_str().unwrap()])
        .args(["--params", &c["params"].to_string()])
        .args(["--layer", c["layer"].as_str().unwrap()])
        .args(["--task", c["task"].as_str().unwrap()])
        .arg("--out")
        .arg(out);
    if let Some(t) = c["target"].as_i64() {
        cmd.args(["--target", &t.to_string()]);
    }
    if let Some(w) = c["wrapper"].as_str() {
        cmd.args(["--wrapper", w]);
    }
    if let Some(m) = c["mask"].as_str() {
        cmd.args(["--mask", m]);
    }
    if c["fixed_mask"] == true {
        cmd.arg("--fixed-mask");
    }
    cmd
}

/// Runs one case through `esegeta explain` and checks it against Captum's map.
fn check(name: &str) {
    let c = case(name);
    let out = scratch(&format!("captum-layers-{name}")).join("map.npy");
    let (ok, stdout, stderr) = run(&mut explain(&c, &out));
    assert!(ok, "{name}: esegeta failed: {stderr}");
    let ours = load(&out);
    let captum = load(&layers_dir().join(c["expected"].as_str().unwrap()));
    let (diff, scale) = max_diff(&ours, &captum);
    let tolerance = if c["check"] == "statistical" {
        3.0 * c["extras"]["captum_other_seeds_max_abs_dev"]
            .as_f64()
            .unwrap()
    } else {
        1e-3 * scale + 1e-6
    };
    assert!(
        diff <= tolerance,
        "{name}: max|ours - captum| = {diff:e} > {tolerance:e} (max|captum| = {scale:e})"
    );
    if let Some(expected) = c["extras"]["convergence_delta"].as_array() {
        check_delta(name, &stdout, expected, &captum);
    }
}

#[test]
fn a_layer_method_on_torchscript_says_to_export_to_onnx() {
    let out = scratch("captum-layers-torchscript").join("never.npy");
    let mut cmd = explain_cmd(
        "classifier2d.pt",
        "classifier2d_x.npy",
        "captum.layer_grad_cam",
    );
    cmd.args(["--layer", "conv1", "--target", "1", "--out"])
        .arg(&out);
    let stderr = fails(&mut cmd);
    for part in [
        "captum.layer_grad_cam needs named layers",
        "TorchScript",
        "ONNX",
    ] {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
    assert!(!out.exists());
}
