//! The rule-based methods (guided backprop, deconvolution, DeepLift and its Shap and layer
//! forms, GradientShap, Guided Grad-CAM, LRP) on ONNX models against Captum 0.9: the cases and
//! reference maps in tests/fixtures/layers come from tools/make_layer_fixtures.py, which ran
//! Captum on the PyTorch modules the ONNX files were exported from, including Captum's
//! published toy values; LRP with zennit's rules, which Captum lacks, against zennit 0.5.1.
//!
//! Deterministic cases: `max|ours - captum| <= 1e-3 * max|captum| + 1e-6`; sampled cases
//! (GradientShap): `<= 3 * spread` of Captum's own runs with 4 other seeds.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::*;

/// The methods this file checks; tests/captum_layers.rs checks the layer methods' cases.
const METHODS: &[&str] = &[
    "captum.guided_backprop",
    "captum.deconvolution",
    "captum.deeplift",
    "captum.deeplift_shap",
    "captum.gradient_shap",
    "captum.guided_grad_cam",
    "captum.lrp",
    "captum.layer_deeplift",
    "captum.layer_deeplift_shap",
];

fn cases() -> Vec<serde_json::Value> {
    fixture_cases("layers/cases.json", "")
        .into_iter()
        .filter(|c| METHODS.contains(&c["method"].as_str().unwrap()))
        .collect()
}

fn check(name: &str) {
    check_captum_case(&fixture_case(cases(), name), "layers");
}

#[test]
fn every_fixture_case_of_these_methods_is_tested() {
    let all: BTreeSet<String> = cases()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let listed: BTreeSet<String> = LISTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(all, listed, "layers/cases.json and the list here differ");
}

cases!(
    c2d_guided_backprop,
    c2d_guided_backprop_b2,
    c2d_deconvolution,
    c2d_deconvolution_b2,
    c2d_deeplift_zero,
    c2d_deeplift_baseline_b2,
    c2d_deeplift_baseline_nomul,
    c2d_deeplift_shap,
    c2d_deeplift_shap_nomul,
    c2d_gradient_shap,
    c2d_gradient_shap_nonoise_b2,
    c2d_guided_grad_cam_conv2,
    c2d_guided_grad_cam_act1_b2,
    c2d_lrp,
    c2d_lrp_b2,
    c2d_lrp_gamma_alpha1_beta0,
    // zennit's rules (LRP-αβ, z⁺, z^B), against zennit 0.5.1.
    c2d_lrp_zbox_alpha2_beta1,
    c2d_lrp_z_plus_signed_input,
    s3d_argmax_lrp_zbox_alpha2_beta1,
    c2d_layer_deeplift_conv2,
    c2d_layer_deeplift_act1_b2,
    c2d_layer_deeplift_conv2_input_nomul,
    c2d_layer_deeplift_shap_conv2,
    s3d_argmax_guided_backprop,
    s3d_argmax_guided_backprop_b2,
    s3d_argmax_deconvolution,
    s3d_argmax_deeplift_zero_fixed,
    s3d_argmax_deeplift_baseline_fixed,
    s3d_argmax_deeplift_baseline_nomul_fixed,
    s3d_argmax_deeplift_shap_fixed,
    s3d_argmax_gradient_shap_fixed,
    s3d_argmax_guided_grad_cam_mid,
    s3d_argmax_layer_deeplift_mid_fixed,
    s3d_argmax_layer_deeplift_shap_mid_fixed,
    captum_one_conv_guided_backprop,
    captum_one_conv_deconvolution,
    captum_lin_maxpool_deeplift,
    captum_relu_deeplift,
    captum_relu_deeplift_nomul,
    rules2d_deeplift_b2,
    rules2d_deeplift_zero_target2,
    rules2d_deeplift_shap,
    rules2d_layer_deeplift_fc1,
);

#[test]
fn an_alpha_beta_rule_with_a_negative_weight_is_refused() {
    let out = scratch("captum-rules-alpha-beta").join("never.npy");
    let rules =
        r#"{"rules": [{"ops": ["Conv"], "rule": {"name": "alpha_beta", "alpha": 2, "beta": -1}}]}"#;
    let mut cmd = esegeta();
    cmd.current_dir(fixture("layers"))
        .args([
            "explain",
            "--model",
            "classifier2d.onnx",
            "--input",
            "c2d_x.npy",
        ])
        .args([
            "--method",
            "captum.lrp",
            "--params",
            rules,
            "--target",
            "1",
            "--out",
        ])
        .arg(&out);
    let stderr = fails(&mut cmd);
    for part in ["alpha_beta", "at least 0", "beta -1"] {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
    assert!(!out.exists());
}
