//! Rule-based and layer methods on models exported with a fixed batch size of 2 (which accept
//! only batches of 2: their flatten is a Reshape to `[2, -1]`), against the same Captum
//! references as the dynamic exports: batches of 1 (padded), 2, and DeepLift's doubled and
//! DeepLiftShap's multiplied batches (chunked) must give the maps the modules give.
//!
//! The exports come from tools/make_fixed_batch_fixtures.py (the modules of
//! tools/make_layer_fixtures.py, same seeds); the cases and references are that script's.
//! Tolerance as in captum_rules.rs: `max|ours - captum| <= 1e-3 * max|captum| + 1e-6`
//! (sampled cases: within 3 spreads of Captum's own seeds).

mod common;

use common::*;

const MODELS: &[&str] = &["classifier2d.onnx", "segmenter3d.onnx", "rules2d.onnx"];

/// Every case of these methods on the three models, run on the fixed-batch export instead.
fn check_all(methods: &[&str]) {
    let cases: Vec<serde_json::Value> = fixture_cases("layers/cases.json", "")
        .into_iter()
        .filter(|c| MODELS.contains(&c["model"].as_str().unwrap()))
        .filter(|c| methods.contains(&c["method"].as_str().unwrap()))
        .collect();
    assert!(
        cases.len() >= methods.len(),
        "too few cases: {}",
        cases.len()
    );
    for mut case in cases {
        let fixed = case["model"]
            .as_str()
            .unwrap()
            .replace(".onnx", "_fixed_b2.onnx");
        case["model"] = fixed.into();
        case["name"] = format!("{}_fixed_b2", case["name"].as_str().unwrap()).into();
        check_captum_case(&case, "layers");
    }
}

#[test]
fn deeplift_and_its_shap_form_on_fixed_batch_exports_equal_captum() {
    check_all(&[
        "captum.deeplift",
        "captum.deeplift_shap",
        "captum.layer_deeplift",
        "captum.layer_deeplift_shap",
    ]);
}

#[test]
fn guided_backprop_deconvolution_and_lrp_on_fixed_batch_exports_equal_captum() {
    check_all(&[
        "captum.guided_backprop",
        "captum.deconvolution",
        "captum.guided_grad_cam",
        "captum.lrp",
    ]);
}

#[test]
fn layer_methods_on_fixed_batch_exports_equal_captum() {
    check_all(&[
        "captum.layer_grad_cam",
        "captum.layer_gradient_x_activation",
        "captum.gradient_shap",
        "cnnvis.score_cam",
    ]);
}
