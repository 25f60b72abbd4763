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

/// Four mistakes of different kinds come out in one listing: a value the schema refuses does
/// not hide the method id, the parameters or the files after it.
#[test]
fn every_problem_of_a_config_is_listed_in_one_pass() {
    let config = json!({
        "model": {"path": fixture("onnx/segmenter3d.onnx"), "task": "segmentaton"},
        "inputs": [{"path": fixture("onnx/segmenter3d_x1.npy"), "targets": [5], "mask": "nowhere.npy"}],
        "methods": [{"id": "captum.saliancy"}, {"id": "captum.occlusion"}],
        "output": {"folder": "out"}
    });
    let e = fails(esegeta().arg("check").arg(write("check-one-pass", config)));
    for expected in [
        "model.task",
        "methods[0].id: unknown method `captum.saliancy`",
        "methods[1].params",
        "sliding_window_shapes",
        "inputs[0].mask",
        "runs once the problems under model",
    ] {
        assert!(e.contains(expected), "{expected} missing from:\n{e}");
    }
    // Problems in the methods alone do not keep the dry run from checking the targets.
    let config = json!({
        "model": {"path": fixture("onnx/segmenter3d.onnx"), "task": "segmentation"},
        "inputs": [{"path": fixture("onnx/segmenter3d_x1.npy"), "targets": [5]}],
        "methods": [{"id": "captum.saliancy"}, {"id": "captum.occlusion", "params": {"strides": "x"}}],
        "output": {"folder": "out"}
    });
    let e = fails(
        esegeta()
            .arg("check")
            .arg(write("check-one-pass-methods", config)),
    );
    for expected in [
        "methods[0].id: unknown method",
        "methods[1].params.strides",
        "inputs[0].targets[0]: target 5 is outside",
    ] {
        assert!(e.contains(expected), "{expected} missing from:\n{e}");
    }
}

/// A model whose activations are not all ReLUs: `check` says before the run that a rule
/// method's rule will not act on all of them.
#[test]
fn check_warns_of_activations_a_rule_passes_through() {
    let config = json!({
        "model": {"path": fixture("onnx/less_common.onnx")},
        "inputs": [{"path": fixture("onnx/less_common_x1.npy"), "targets": [0]}],
        "methods": [{"id": "captum.guided_backprop"}, {"id": "captum.saliency"}],
        "output": {"folder": "out"}
    });
    let (ok, stdout, stderr) = run(esegeta()
        .arg("check")
        .arg(write("check-activations", config)));
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("methods[0] (captum.guided_backprop) runs backward rules on model")
            && stderr.contains("PRelu x1")
            && !stderr.contains("methods[1]"),
        "{stderr}"
    );
}

/// A config whose lists multiply past what one run takes is refused before any job is made.
#[test]
fn a_config_that_plans_too_many_jobs_is_refused_with_the_count() {
    let targets: Vec<i64> = (0..250_000).collect();
    let config = json!({
        "model": {"path": fixture("classifier2d.pt")},
        "inputs": [{"path": fixture("classifier2d_x.npy"), "targets": targets}],
        "methods": [{"id": "captum.saliency"}],
        "output": {"folder": "out"}
    });
    let e = fails(
        esegeta()
            .arg("check")
            .arg("--no-model")
            .arg(write("check-too-many", config)),
    );
    assert!(
        e.contains("plans 250000 jobs") && e.contains("200000"),
        "{e}"
    );
}
