//! Warnings where a map means less than its name: a ReLU rule on a model whose activations
//! are mostly something else, and a convergence delta large against the map's sum. They go
//! to the manifest (and from there to the report), and never fail the job.

mod common;

use common::*;
use serde_json::{json, Value};

fn run_one(test: &str, model: &str, input: &str, method: Value) -> Value {
    let task = if model.contains("segmenter") {
        "segmentation"
    } else {
        "classification"
    };
    run_config(
        test,
        json!({
            "model": {"path": fixture(model), "task": task},
            "inputs": [{"path": fixture(input), "targets": [1]}],
            "methods": [method],
            "output": {"folder": "out", "formats": ["npy"]}
        }),
    )
}

/// Runs `config` in a scratch folder; the manifest's first job.
fn run_config(test: &str, config: Value) -> Value {
    let dir = scratch(test);
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

/// The `mask` wrapper's region for the 3D segmenter's input, ones in the given corner box
/// (`[d, h, w]` from the origin), zeros elsewhere, written to `name`.
fn region(test: &str, name: &str, corner: [i64; 3]) -> std::path::PathBuf {
    let x = load(&fixture("onnx/segmenter3d_x1.npy"));
    let spatial = &x.size()[2..];
    let r = tch::Tensor::zeros(spatial, (tch::Kind::Float, tch::Device::Cpu));
    let _ = r.narrow(0, 0, corner[0])
        .narrow(1, 0, corner[1])
        .narrow(2, 0, corner[2])
        .fill_(1.0);
    // Beside the run's own scratch folder, which the run clears.
    let path = scratch(&format!("{test}-region")).join(name);
    r.write_npy(&path).unwrap();
    path
}

fn masked_saliency(test: &str, region: &std::path::Path, patching: Value) -> Value {
    run_config(
        test,
        json!({
            "model": {"path": fixture("segmenter3d.pt"), "task": "segmentation", "wrapper": "mask"},
            "inputs": [{"path": fixture("onnx/segmenter3d_x1.npy"), "targets": [1], "mask": region}],
            "methods": [{"id": "captum.saliency"}],
            "execution": {"patching": patching},
            "output": {"folder": "out", "formats": ["npy"]}
        }),
    )
}

#[test]
fn an_empty_wrapper_mask_warns_once_and_a_window_without_it_does_not() {
    let empty = region("caveats-empty", "empty.npy", [0, 0, 0]);
    let job = masked_saliency("caveats-empty", &empty, Value::Null);
    let warnings = job["warnings"].to_string();
    assert!(
        warnings.contains("the region mask of target 1 is empty on example 0"),
        "{job}"
    );
    // The mask's own sentence replaces the generic all-zeros one.
    assert!(!warnings.contains("all zeros"), "{job}");

    let patching = json!({"size": [4, 4, 4], "overlap": 0.0});
    let job = masked_saliency("caveats-empty-windows", &empty, patching.clone());
    assert!(
        job["warnings"].to_string().contains("empty in each of the"),
        "{job}"
    );
    // A region in one corner: the other windows lack it, which is no reason to warn.
    let corner = region("caveats-corner", "corner.npy", [2, 2, 2]);
    let job = masked_saliency("caveats-corner", &corner, patching);
    assert_eq!(job["status"], "done");
    assert!(job.get("warnings").is_none(), "{job}");
}
