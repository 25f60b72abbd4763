//! CAMs on transformer token layers: a ViT's encoder blocks (`[B, 1 + 4*4, 32]`), a Swin's
//! channels-last stages (`[B, 8, 8, 24]`, `[B, 4, 4, 48]`), and in 3D MONAI's ViT
//! (`[B, 1 + 4*4*4, 32]`) and a UNETR's encoder (`[B, 2*2*2, 48]`, no class token, through the
//! argmax wrapper with a fixed mask), reshaped onto the patch grid that esegeta infers from the
//! patch embedding, or that `token_grid` gives. The references in
//! tests/fixtures/tokens come from tools/make_token_fixtures.py: pytorch-grad-cam 1.5.7 with the
//! `reshape_transform` of its documentation, its map before display scaling.
//!
//! The references are pytorch-grad-cam's maps with the model in float64. esegeta's fp64 maps
//! must be within 1e-6 of the map's largest value (measured: 0 to 4.4e-8, Score-CAM 1.4e-7).
//! In fp32 within 1e-3 of it, or 4 times the case's `float32_noise` where that is larger: the
//! distance pytorch-grad-cam's own float32 map keeps from float64 (2.5e-3 on the UNETR, whose
//! CAM cancels large terms; 4e-7 to 6e-6 elsewhere). Measured in fp32: 3.5e-7 to 9.7e-6, the
//! UNETR 2.1e-3.

#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};

fn cases() -> Vec<Value> {
    fixture_cases("tokens/cases.json", "")
}

/// `esegeta explain` of a case with `params`, run from the fixtures' folder.
fn explain(
    c: &Value,
    method: &str,
    params: &Value,
    out: &std::path::Path,
    precision: &str,
) -> std::process::Command {
    let mut cmd = esegeta();
    cmd.current_dir(fixture("tokens"));
    cmd.args(["explain", "--model", c["model"].as_str().unwrap()])
        .args(["--input", c["input"].as_str().unwrap()])
        .args(["--method", method])
        .args(["--params", &params.to_string()])
        .args(["--layer", c["layer"].as_str().unwrap()])
        .args(["--target", &c["target"].to_string()])
        .args(["--precision", precision])
        .arg("--out")
        .arg(out);
    if let Some(wrapper) = c["wrapper"].as_str() {
        cmd.args(["--wrapper", wrapper, "--fixed-mask"]);
    }
    cmd
}

/// Captum's GradCAM is compared with its ReLU, as pytorch-grad-cam applies it.
fn base_params(method: &str) -> Value {
    match method {
        "captum.layer_grad_cam" => json!({"relu_attributions": true}),
        _ => json!({}),
    }
}

/// Runs `method` on case `c` with `params` at `precision` and compares with the case's
/// reference.
fn check(c: &Value, method: &str, params: &Value, label: &str, precision: &str) {
    let name = c["name"].as_str().unwrap();
    let out = scratch(&format!("token-layers-{name}-{label}-{precision}")).join("map.npy");
    let (ok, _, stderr) = run(&mut explain(c, method, params, &out, precision));
    assert!(ok, "{name} ({label}): esegeta failed: {stderr}");
    let expected = load(&fixture("tokens").join(c["expected"].as_str().unwrap()));
    let (diff, scale) = max_diff(&load(&out), &expected);
    assert!(
        scale > 0.0,
        "{name}: the reference map is zero, nothing to compare"
    );
    let relative = match precision {
        "fp64" => 1e-6,
        _ => (4.0 * c["float32_noise"].as_f64().unwrap()).max(1e-3),
    };
    let tolerance = relative * scale;
    assert!(
        diff <= tolerance,
        "{name} ({label}, {precision}): {diff:e} > {tolerance:e}"
    );
}

#[test]
fn cams_on_token_layers_match_pytorch_grad_cam_with_the_inferred_grid() {
    for c in cases() {
        let method = c["method"].as_str().unwrap();
        for precision in ["fp64", "fp32"] {
            check(&c, method, &base_params(method), "inferred", precision);
        }
    }
}

#[test]
fn an_explicit_token_grid_gives_the_same_maps() {
    for c in cases() {
        let method = c["method"].as_str().unwrap();
        let mut params = base_params(method);
        params["token_grid"] = c["grid"].clone();
        check(&c, method, &params, "explicit", "fp32");
    }
}

/// TorchRay's `grad_cam` is `ReLU(sum_c mean(G_c) A_c)`, pytorch-grad-cam's GradCAM.
#[test]
fn torchray_grad_cam_on_token_layers_matches_too() {
    for c in cases()
        .iter()
        .filter(|c| c["method"] == "captum.layer_grad_cam")
    {
        check(c, "torchray.grad_cam", &json!({}), "torchray", "fp32");
    }
}

#[test]
fn a_wrong_token_grid_is_refused_by_name() {
    for (name, grid) in [
        (
            "vit_layer_grad_cam_encoder_layers_encoder_layer_0",
            json!([3, 3]),
        ),
        (
            "vit_layer_grad_cam_encoder_layers_encoder_layer_0",
            json!([8, 8]),
        ),
        ("swin_layer_grad_cam_features_3", json!([2, 2])),
        ("swin_layer_grad_cam_features_3", json!([4, 4, 4])),
        ("vit3d_layer_grad_cam_vit_blocks_0", json!([4, 4, 2])),
        ("vit3d_layer_grad_cam_vit_blocks_0", json!([8, 8])),
    ] {
        let c = fixture_case(cases(), name);
        let params = json!({"token_grid": grid});
        let out = scratch("token-layers-wrong-grid").join("map.npy");
        let stderr = fails(&mut explain(
            &c,
            "captum.layer_grad_cam",
            &params,
            &out,
            "fp32",
        ));
        assert!(stderr.contains("token_grid"), "{name} {grid}: {stderr}");
        assert!(
            stderr.contains(&grid.to_string().replace(',', ", ")),
            "{name} {grid}: {stderr}"
        );
    }
}

#[test]
fn a_token_layer_map_upsamples_to_the_input() {
    let c = fixture_case(cases(), "vit_layer_grad_cam_encoder_layers_encoder_layer_0");
    let out = scratch("token-layers-upsample").join("map.npy");
    let params = json!({"upsample_to_input": true});
    let (ok, _, stderr) = run(&mut explain(
        &c,
        "captum.layer_grad_cam",
        &params,
        &out,
        "fp32",
    ));
    assert!(ok, "{stderr}");
    assert_eq!(load(&out).size(), vec![2, 1, 32, 32]);
}
