//! Warnings where a map means less than its name: a ReLU rule on a model whose activations
//! are mostly something else, and a convergence delta large against the map's sum. They go
//! to the manifest (and from there to the report), and never fail the job.

mod common;

use common::*;
use serde_json::{json, Value};

fn run_one(test: &str, model: &str, input: &str, method: Value) -> Value {
    let dir = scratch(test);
    let task = if model.contains("segmenter") {
        "segmentation"
    } else {
        "classification"
    };
    let config = json!({
        "model": {"path": fixture(model), "task": task},
        "inputs": [{"path": fixture(input), "targets": [1]}],
        "methods": [method],
        "output": {"folder": "out", "formats": ["npy"]}
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let (ok, _, stderr) = run(esegeta().arg("run").arg(&path));
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(dir.join("out/results.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["jobs"][0].clone()
}

#[test]
fn guided_backprop_says_how_many_activations_its_rule_acted_on() {
    let job = run_one(
        "caveats-rules",
        "onnx/less_common.onnx",
        "onnx/less_common_x1.npy",
        json!({"id": "captum.guided_backprop"}),
    );
    let warnings = job["warnings"].to_string();
    assert!(
        warnings.contains("the rule acts on") && warnings.contains("PRelu x1"),
        "{job}"
    );
    // All of the classifier's activations are ReLUs: nothing to say.
    let job = run_one(
        "caveats-relu",
        "onnx/classifier2d.onnx",
        "onnx/classifier2d_x1.npy",
        json!({"id": "captum.guided_backprop"}),
    );
    assert!(job.get("warnings").is_none(), "{job}");
}

#[test]
fn a_coarse_integral_warns_with_its_convergence_delta() {
    let job = run_one(
        "caveats-delta",
        "onnx/segmenter3d.onnx",
        "onnx/segmenter3d_x1.npy",
        json!({"id": "captum.integrated_gradients", "params": {"n_steps": 2, "method": "riemann_left"}}),
    );
    assert_eq!(job["status"], "done");
    assert!(
        job["warnings"].to_string().contains("convergence delta"),
        "{job}"
    );
}
