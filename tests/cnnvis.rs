//! The cnnvis plugin's class activation maps against pytorch-grad-cam 1.5.7 on the small ONNX
//! models of tests/fixtures/layers (cases from tools/make_layer_fixtures.py, which ran
//! pytorch-grad-cam itself): `max|ours - reference| <= 1e-3 * max|reference| + 1e-6`. Score-CAM
//! on 3D layers, which pytorch-grad-cam's ScoreCAM does not take, is checked for what must hold
//! on any model.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use serde_json::Value;
use tch::Kind;

fn cases() -> Vec<Value> {
    fixture_cases("layers/cases.json", "")
        .into_iter()
        .filter(|c| c["method"].as_str().unwrap().starts_with("cnnvis."))
        .collect()
}

fn case(name: &str) -> Value {
    fixture_case(cases(), name)
}

fn check(name: &str) {
    check_captum_case(&case(name), "layers");
}

cases!(
    c2d_score_cam_conv2,
    c2d_score_cam_act1_b2,
    c2d_grad_cam_plus_plus_conv2,
    c2d_grad_cam_plus_plus_act1_b2,
    s3d_argmax_grad_cam_plus_plus_mid,
    c2d_layer_cam_conv2,
    c2d_layer_cam_act1_b2,
    s3d_argmax_layer_cam_mid,
    c2d_xgrad_cam_conv2,
    c2d_xgrad_cam_act1_b2,
    s3d_argmax_xgrad_cam_mid,
    c2d_hires_cam_conv2,
    c2d_hires_cam_act1_b2,
    s3d_argmax_hires_cam_mid,
);

#[test]
fn every_cnnvis_fixture_case_is_tested() {
    let all: BTreeSet<String> = cases()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let listed: BTreeSet<String> = LISTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(all, listed, "layers/cases.json and the list here differ");
}

/// `esegeta explain` of `cnnvis.<method>` on a model of tests/fixtures/layers.
fn cam(
    method: &str,
    model: &str,
    input: &str,
    layer: &str,
    extra: &[&str],
    out: &Path,
) -> (bool, String) {
    let mut cmd = esegeta();
    cmd.current_dir(fixture("layers"))
        .args(["explain", "--model", model, "--input", input])
        .args(["--method", &format!("cnnvis.{method}"), "--layer", layer])
        .args(["--target", "0"])
        .args(extra)
        .arg("--out")
        .arg(out);
    let (ok, _, stderr) = run(&mut cmd);
    (ok, stderr)
}

/// On the 3D segmenter: the map has the layer's grid with one channel, is non-negative, and
/// `upsample_to_input` brings it to the input's grid.
#[test]
fn score_cam_on_a_3d_layer_has_the_layer_grid_and_upsamples() {
    let dir = scratch("cnnvis-3d");
    let seg = ["--task", "segmentation", "--wrapper", "argmax"];
    let (ok, stderr) = cam(
        "score_cam",
        "segmenter3d.onnx",
        "s3d_x.npy",
        "mid",
        &seg,
        &dir.join("a.npy"),
    );
    assert!(ok, "{stderr}");
    let map = load(&dir.join("a.npy"));
    assert_eq!(map.size(), vec![1, 1, 4, 4, 4]);
    assert!(
        map.min().double_value(&[]) >= 0.0,
        "a ReLU'd map has no negative values"
    );
    assert!(
        map.max().double_value(&[]) > 0.0,
        "an all-zero map tests nothing"
    );
    let upsampled = [&seg[..], &["--params", r#"{"upsample_to_input": true}"#]].concat();
    let (ok, stderr) = cam(
        "score_cam",
        "segmenter3d.onnx",
        "s3d_x.npy",
        "mid",
        &upsampled,
        &dir.join("b.npy"),
    );
    assert!(ok, "{stderr}");
    let up = load(&dir.join("b.npy"));
    assert_eq!(up.size(), vec![1, 1, 8, 8, 8]);
    // Trilinear resampling stays within the map's range.
    let (lo, hi) = (up.min().double_value(&[]), up.max().double_value(&[]));
    assert!(lo >= 0.0 && hi <= map.max().double_value(&[]) * (1.0 + 1e-6));
    assert_eq!(up.kind(), Kind::Float);
}

#[test]
fn a_layer_without_the_inputs_grid_is_refused_by_name() {
    let out = scratch("cnnvis-flat").join("never.npy");
    let (ok, stderr) = cam(
        "score_cam",
        "classifier2d.onnx",
        "c2d_x.npy",
        "fc",
        &[],
        &out,
    );
    assert!(!ok);
    for part in [
        "Score-CAM masks the input with the layer's channels",
        "layer `fc`",
    ] {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
    for method in ["grad_cam_plus_plus", "layer_cam", "xgrad_cam", "hires_cam"] {
        let (ok, stderr) = cam(method, "classifier2d.onnx", "c2d_x.npy", "fc", &[], &out);
        assert!(!ok, "{method} took a flat layer");
        for part in [
            "needs a layer with spatial dimensions",
            "layer `fc`",
            "[1, 3]",
        ] {
            assert!(
                stderr.contains(part),
                "{method}: expected {part:?} in:\n{stderr}"
            );
        }
    }
    assert!(!out.exists());
}

/// CNN-vis's gradient maps are Captum's Saliency(abs=False) and InputXGradient: the Captum
/// fixtures of tests/fixtures/cases.json (TorchScript 2D, and the 3D segmenter through the
/// argmax wrapper) checked with the cnnvis method in their place.
#[test]
fn vanilla_backprop_and_grad_times_image_equal_captum() {
    let captum = fixture_cases("cases.json", "");
    for (name, method) in [
        ("classifier2d_saliency_noabs", "cnnvis.vanilla_backprop"),
        ("classifier2d_input_x_gradient", "cnnvis.grad_times_image"),
        ("seg3d_argmax_input_x_gradient", "cnnvis.grad_times_image"),
    ] {
        let mut c = fixture_case(captum.clone(), name);
        c["method"] = serde_json::json!(method);
        c["params"] = serde_json::json!({});
        check_captum_case(&c, "");
    }
}

/// `grayscale`: |map| summed over channels, scaled from its minimum to its 99th percentile
/// (numpy's linear interpolation) and clipped, computed here from Captum's signed saliency.
#[test]
fn vanilla_backprop_in_grayscale_is_cnn_vis_convert_to_grayscale() {
    let out = scratch("cnnvis-grayscale").join("grey.npy");
    let mut cmd = esegeta();
    cmd.current_dir(fixtures())
        .args([
            "explain",
            "--model",
            "classifier2d.pt",
            "--input",
            "classifier2d_x.npy",
        ])
        .args([
            "--method",
            "cnnvis.vanilla_backprop",
            "--params",
            r#"{"grayscale": true}"#,
        ])
        .args(["--target", "1", "--out"])
        .arg(&out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    let ours = load(&out);
    let signed = load(&fixture("classifier2d_saliency_noabs.npy"));
    let summed = signed.abs().sum_dim_intlist(1, true, Kind::Double);
    let mut values: Vec<f64> = Vec::try_from(summed.flatten(0, -1)).unwrap();
    values.sort_by(f64::total_cmp);
    let rank = 0.99 * (values.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let p99 = values[low] + (values[high] - values[low]) * (rank - low as f64);
    let expected = ((summed - values[0]) / (p99 - values[0])).clamp(0.0, 1.0);
    assert_eq!(ours.size(), [1, 1, 8, 8]);
    let (diff, _) = max_diff(&ours, &expected.to_kind(Kind::Float));
    // Both in [0, 1]: float32 rounding only.
    assert!(diff <= 1e-5, "{diff:e}");
    assert!(
        ours.max().double_value(&[]) == 1.0,
        "the top 1% is clipped to 1"
    );
}

/// Guided Grad-CAM is Captum's GuidedGradCam (nearest-neighbour upsampling, no display
/// scaling): the Captum fixtures of tests/fixtures/layers with the cnnvis method in their
/// place, 2D (batch of one and two) and the 3D segmenter through the argmax wrapper.
#[test]
fn guided_grad_cam_equals_captum() {
    for name in [
        "c2d_guided_grad_cam_conv2",
        "c2d_guided_grad_cam_act1_b2",
        "s3d_argmax_guided_grad_cam_mid",
    ] {
        let mut c = fixture_case(fixture_cases("layers/cases.json", ""), name);
        c["method"] = serde_json::json!("cnnvis.guided_grad_cam");
        check_captum_case(&c, "layers");
    }
}

/// Layer activation with guided backpropagation against Captum's NeuronGuidedBackprop with
/// the selector `sum |A[:, filter]|` (tests/fixtures/cnnvis, tools/make_cnnvis_fixtures.py):
/// within 1e-3 of max|reference|, the default tolerance of check_captum_case.
#[test]
fn layer_activation_guided_backprop_equals_captum() {
    let all = fixture_cases("cnnvis/cases.json", "/cases");
    assert_eq!(all.len(), 3);
    for c in all {
        check_captum_case(&c, "cnnvis");
    }
}

#[test]
fn a_filter_outside_the_layer_is_refused_by_name() {
    let out = scratch("cnnvis-filter").join("never.npy");
    let params = r#"{"filter": 8}"#;
    let (ok, stderr) = cam(
        "layer_activation_guided_backprop",
        "classifier2d.onnx",
        "c2d_x.npy",
        "conv2",
        &["--params", params],
        &out,
    );
    assert!(!ok);
    for part in ["filter 8", "layer `conv2`", "[1, 8, 4, 4]", "below 8"] {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
    assert!(!out.exists());
}
