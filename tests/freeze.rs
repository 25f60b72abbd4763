//! `--freeze` (a config's `model.freeze`): a TorchScript model's forward passes without
//! gradients run on a copy frozen for inference (host/src/model/frozen.rs). On batch-normed
//! CNNs in 2D and 3D (tools/make_freeze_fixtures.py) its occlusion is Captum's, and as close to
//! a float64 occlusion as the plain float32 module's; gradients never go through it; a model
//! it cannot serve (a dict output) falls back to the plain module with the same map.

mod common;

use common::*;
use serde_json::{json, Value};
use tch::Tensor;

const OCCLUSION_2D: &str = r#"{"sliding_window_shapes": [3, 8, 8], "strides": 4}"#;
const OCCLUSION_3D: &str = r#"{"sliding_window_shapes": [1, 4, 4, 4], "strides": 4}"#;

/// The map of `method` on `model` and `input` (under fixtures/), with `extra` flags, and the
/// log at info level.
fn map(name: &str, model: &str, input: &str, method: &str, extra: &[&str]) -> (Tensor, String) {
    let out = scratch(&format!("freeze-{name}")).join("map.npy");
    let mut cmd = explain_cmd(model, input, method);
    cmd.args(["--log-level", "info"]).args(extra).arg("--out").arg(&out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    (load(&out), stderr)
}

fn occlusion(name: &str, dims: &str, freeze: bool) -> (Tensor, String) {
    let params = if dims == "2d" { OCCLUSION_2D } else { OCCLUSION_3D };
    let mut extra = vec!["--params", params, "--target", "1"];
    if freeze {
        extra.push("--freeze");
    }
    let (model, input) = (format!("freeze/bn{dims}.pt"), format!("freeze/x{dims}.npy"));
    map(name, &model, &input, "captum.occlusion", &extra)
}

#[test]
fn frozen_occlusion_of_batch_normed_cnns_is_captums_in_2d_and_3d() {
    for dims in ["2d", "3d"] {
        let (frozen, log) = occlusion(&format!("occ-{dims}"), dims, true);
        assert!(log.contains("run on a copy frozen for inference"), "{log}");
        assert!(!log.contains("the frozen model failed"), "{log}");
        let (plain, _) = occlusion(&format!("occ-plain-{dims}"), dims, false);
        let captum = load(&fixture(&format!("freeze/bn{dims}_occlusion.npy")));
        let double = load(&fixture(&format!("freeze/bn{dims}_occlusion_f64.npy")));
        let double = double.to_kind(tch::Kind::Float);
        // The house tolerance for Captum's maps: 1e-3 of the map's scale.
        let (diff, scale) = max_diff(&frozen, &captum);
        assert!(diff <= 1e-3 * scale, "{dims}: {diff:e} from Captum's (scale {scale:e})");
        // Against float64: the plain float32 module is off by 5.5e-5 (2D) and 1.5e-5 (3D) of
        // the scale here, the frozen one by 1.1e-4 and 1.6e-5 (folding the batch norms rounds
        // differently); both are float32's rounding of the scores, which 3e-4 bounds.
        let (plain_error, scale) = max_diff(&plain, &double);
        let (frozen_error, _) = max_diff(&frozen, &double);
        assert!(
            frozen_error <= 3e-4 * scale,
            "{dims}: frozen {frozen_error:e} from float64 (plain {plain_error:e}, scale {scale:e})"
        );
        // Something was frozen: the arithmetic differs from the plain module's.
        assert!(frozen != plain, "{dims}: the frozen map is the plain one, bit for bit");
    }
}

#[test]
fn gradients_never_go_through_the_frozen_copy() {
    for dims in ["2d", "3d"] {
        let (model, input) = (format!("freeze/bn{dims}.pt"), format!("freeze/x{dims}.npy"));
        let saliency = |name: &str, extra: &[&str]| {
            let flags = [&["--target", "1"], extra].concat();
            map(name, &model, &input, "captum.saliency", &flags).0
        };
        let frozen = saliency(&format!("sal-{dims}"), &["--freeze"]);
        assert!(
            frozen == saliency(&format!("sal-plain-{dims}"), &[]),
            "{dims}: saliency changed"
        );
        let captum = load(&fixture(&format!("freeze/bn{dims}_saliency.npy")));
        let (diff, scale) = max_diff(&frozen, &captum);
        assert!(diff <= 1e-3 * scale, "{dims}: {diff:e} from Captum (scale {scale:e})");
    }
}

#[test]
fn a_model_the_frozen_copy_cannot_serve_falls_back_to_the_plain_one() {
    // A dict of outputs: the frozen copy gives no single tensor, the plain module picks
    // `logits`.
    let flags = ["--params", r#"{"sliding_window_shapes": [1, 2, 2]}"#, "--target", "1"];
    let model = "outputs/dict_outputs.pt";
    let (frozen, log) = map(
        "dict",
        model,
        "outputs/x.npy",
        "captum.occlusion",
        &[&flags[..], &["--freeze"]].concat(),
    );
    assert!(log.contains("the frozen model failed"), "{log}");
    let (plain, _) = map("dict-plain", model, "outputs/x.npy", "captum.occlusion", &flags);
    assert!(frozen == plain, "the fallback's map differs from the plain module's");
    // ONNX models run as they are, with a warning.
    let (_, log) = map(
        "onnx",
        "onnx/classifier2d.onnx",
        "onnx/classifier2d_x1.npy",
        "captum.saliency",
        &["--freeze", "--target", "1"],
    );
    assert!(log.contains("--freeze applies to TorchScript models"), "{log}");
}

#[test]
fn a_config_freezes_its_model_for_a_segmentation_wrapper_in_3d() {
    let dir = scratch("freeze-config");
    let maps: Vec<Tensor> = [false, true]
        .iter()
        .map(|&freeze| {
            let folder = dir.join(format!("out-{freeze}"));
            let config = json!({
                "model": {"path": fixture("segmenter3d.pt"), "task": "segmentation",
                          "wrapper": "argmax", "freeze": freeze},
                "inputs": [{"path": fixture("vol.nii.gz"), "targets": [1]}],
                "methods": [{"id": "captum.occlusion",
                             "params": {"sliding_window_shapes": [1, 4, 4, 4], "strides": 4}}],
                "output": {"folder": folder, "formats": ["npy"]}
            });
            let path = dir.join(format!("config-{freeze}.json"));
            std::fs::write(&path, config.to_string()).unwrap();
            let (ok, _, stderr) = run(esegeta().args(["--log-level", "info", "run"]).arg(&path));
            assert!(ok, "{stderr}");
            assert_eq!(stderr.contains("frozen for inference"), freeze, "{stderr}");
            let text = std::fs::read_to_string(folder.join("results.json")).unwrap();
            let results: Value = serde_json::from_str(&text).unwrap();
            let job = &results["jobs"][0];
            let file = job["files"][0].as_str().unwrap_or_else(|| panic!("{job}"));
            load(&folder.join(file))
        })
        .collect();
    // No batch norm to fold: the frozen copy computes the same scores within float32's
    // rounding (1e-5 of the map's scale, the issue's bound for frozen forward passes).
    let (diff, scale) = max_diff(&maps[1], &maps[0]);
    assert!(diff <= 1e-5 * scale.max(1e-12), "{diff:e} (scale {scale:e})");
}
