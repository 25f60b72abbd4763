//! Every method against Captum 0.9 on real (small) models: the cases and reference maps in
//! tests/fixtures come from tools/make_fixtures.py, which ran Captum itself.
//!
//! Deterministic cases: `max|ours - captum| <= 1e-3 * max|captum| + 1e-6`.
//! Sampled cases (noise tunnel, Shapley sampling, Lime, KernelShap):
//! `max|ours - captum| <= 3 * spread`, where
//! spread is the largest deviation among Captum's own runs with 4 other seeds (recorded by
//! the script), i.e. we must agree with Captum as well as Captum agrees with itself.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::*;

fn cases() -> Vec<serde_json::Value> {
    fixture_cases("cases.json", "")
}

fn case(name: &str) -> serde_json::Value {
    fixture_case(cases(), name)
}

fn check(name: &str) {
    check_captum_case(&case(name), "");
}

cases!(
    classifier2d_saliency,
    classifier2d_saliency_noabs,
    classifier2d_input_x_gradient,
    classifier2d_ig_gausslegendre,
    classifier2d_ig_riemann_left,
    classifier2d_ig_riemann_right,
    classifier2d_ig_riemann_middle,
    classifier2d_ig_riemann_trapezoid,
    classifier2d_ig_gausslegendre_ibs7_baseline,
    classifier2d_occlusion,
    classifier2d_occlusion_b05_ppe4,
    classifier2d_feature_ablation,
    classifier2d_feature_ablation_quadrants,
    classifier2d_feature_permutation,
    classifier2d_feature_permutation_quadrants,
    classifier2d_shapley_sampling_quadrants,
    classifier2d_nt_smoothgrad_saliency,
    classifier2d_nt_smoothgrad_ig,
    classifier2d_nt_smoothgrad_sq_saliency,
    classifier2d_nt_smoothgrad_sq_ig,
    classifier2d_nt_vargrad_saliency,
    classifier2d_nt_vargrad_ig,
    classifier2d_fixed_b1_ig_gausslegendre,
    classifier2d_fixed_b1_occlusion_ppe4,
    seg3d_argmax_saliency,
    seg3d_argmax_saliency_target0,
    seg3d_argmax_input_x_gradient,
    seg3d_argmax_ig_trapezoid,
    seg3d_argmax_occlusion,
    seg3d_argmax_feature_ablation_octants,
    seg3d_argmax_fixed_saliency,
    seg3d_argmax_fixed_ig,
    seg3d_fg_threshold_saliency,
    seg3d_fg_threshold_ig,
    seg3d_fg_threshold_fixed_saliency,
    seg3d_mask_saliency,
    seg3d_mask_occlusion,
    captum_one_conv_occlusion_full,
    captum_one_conv_occlusion_2x3,
    classifier2d_shapley_values_quadrants,
    classifier2d_x2_shapley_values_quadrants,
    seg3d_argmax_shapley_values_octants,
    classifier2d_kernel_shap_quadrants,
    classifier2d_x2_kernel_shap_quadrants,
    classifier2d_lime_quadrants,
    classifier2d_lime_euclidean_quadrants,
    seg3d_argmax_kernel_shap_octants,
    seg3d_argmax_lime_octants,
);

#[test]
fn every_fixture_case_is_tested() {
    let all: BTreeSet<String> = cases()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let listed: BTreeSet<String> = LISTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(all, listed, "cases.json and the cases! list differ");
}
