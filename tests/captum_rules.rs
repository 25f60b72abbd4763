//! The rule-based methods (guided backprop, deconvolution, DeepLift and its Shap and layer
//! forms, GradientShap, Guided Grad-CAM, LRP) on ONNX models against Captum 0.9: the cases and
//! reference maps in tests/fixtures/layers come from tools/make_layer_fixtures.py, which ran
//! Captum on the PyTorch modules the ONNX files were exported from, including Captum's
//! published toy values.
//!
//! Deterministic cases: `max|ours - captum| <= 1e-3 * max|captum| + 1e-6`; sampled cases
//! (GradientShap): `<= 3 * spread` of Captum's own runs with 4 other seeds.

#[macro_use]
mod common;

use common::*;

fn check(name: &str) {
    let c = fixture_case(fixture_cases("layers/cases.json", ""), name);
    check_captum_case(&c, "layers");
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
