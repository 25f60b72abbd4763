//! `esegeta check` is model-aware: the first input goes through each model and its wrapper
//! once, so that a target outside the score columns or an input the export cannot take fails
//! the check, by config path, instead of every job at run time.

mod common;

use common::*;
use serde_json::json;

fn write(test: &str, config: serde_json::Value) -> std::path::PathBuf {
    let path = scratch(test).join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn a_target_outside_the_score_columns_fails_the_check_and_the_job_count_is_printed() {
    let mut config = json!({
        "model": {"path": fixture("onnx/segmenter3d.onnx"), "task": "segmentation"},
        "inputs": [{"path": fixture("onnx/segmenter3d_x1.npy"), "targets": [1, 5]}],
        "methods": [{"id": "captum.saliency"}, {"id": "captum.input_x_gradient"}],
        "output": {"folder": "out"}
    });
    let path = write("check-targets", config.clone());
    let e = fails(esegeta().arg("check").arg(&path));
    assert!(
        e.contains("inputs[0].targets[1]: target 5 is outside the 2 score column(s)")
            && e.contains("segmentation through the argmax wrapper")
            && e.contains("use 0 to 1"),
        "{e}"
    );
    // Without the dry run the config alone is valid.
    let (ok, stdout, stderr) = run(esegeta().arg("check").arg("--no-model").arg(&path));
    assert!(
        ok && stdout.contains("4 job(s) planned"),
        "{stdout}{stderr}"
    );
    config["inputs"][0]["targets"] = json!([0, 1]);
    let path = write("check-targets", config);
    let (ok, stdout, stderr) = run(esegeta().arg("check").arg(&path));
    assert!(
        ok && stdout.contains("is valid: 4 job(s) planned"),
        "{stdout}{stderr}"
    );
}

#[test]
fn an_input_a_fixed_size_export_cannot_take_fails_the_check() {
    // The classifier's export takes 3-channel images; a grey one does not go through.
    let config = json!({
        "model": {"path": fixture("onnx/classifier2d.onnx")},
        "inputs": [{"path": fixture("gray.npy"), "targets": [0]}],
        "methods": [{"id": "captum.saliency"}],
        "output": {"folder": "out"}
    });
    let e = fails(esegeta().arg("check").arg(write("check-shape", config)));
    assert!(
        e.contains("model: the dry run of") && e.contains("gray.npy"),
        "{e}"
    );
}
