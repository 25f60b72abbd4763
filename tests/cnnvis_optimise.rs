//! The cnnvis plugin's optimisation methods (DeepDream, layer visualisation, inverted
//! representation). No installable library computes them, so tools/cnnvis_reference.py
//! implements each from its paper in plain PyTorch and tools/make_cnnvis_fixtures.py runs it
//! for a few steps on the small models of tests/fixtures/layers, 2D and 3D, from the seeded
//! start esegeta draws: esegeta must follow it, `max|ours - reference| <= 1e-4 *
//! max|reference| + 1e-6`. Then what each method promises, on the demo's vessel UNet,
//! measured with esegeta's own `captum.layer_activation`.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;
use tch::{Kind, Tensor};

fn case(name: &str) -> Value {
    fixture_case(fixture_cases("cnnvis/optimise.json", "/cases"), name)
}

/// `esegeta explain` of `method` at `layer` with `params`; the map it wrote.
fn explain(
    dir: &Path,
    model: &str,
    input: &str,
    method: &str,
    layer: &str,
    params: &Value,
) -> Tensor {
    let stem = Path::new(input).file_stem().unwrap().to_string_lossy();
    let out = scratch(&format!(
        "optimise-{method}-{stem}-{}",
        params.to_string().len()
    ))
    .join("map.npy");
    let mut cmd = esegeta();
    cmd.current_dir(dir)
        .args([
            "explain", "--model", model, "--input", input, "--method", method,
        ])
        .args(["--layer", layer, "--params", &params.to_string(), "--out"])
        .arg(&out);
    if model.contains("segmenter") || model.contains("unet") {
        cmd.args(["--task", "segmentation", "--wrapper", "argmax"]);
    }
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{method}: {stderr}");
    load(&out)
}

fn check(name: &str) {
    let c = case(name);
    let dir = fixture("cnnvis");
    let ours = explain(
        &dir,
        c["model"].as_str().unwrap(),
        c["input"].as_str().unwrap(),
        c["method"].as_str().unwrap(),
        c["layer"].as_str().unwrap(),
        &c["params"],
    );
    let reference = load(&dir.join(c["expected"].as_str().unwrap()));
    let (diff, scale) = max_diff(&ours, &reference);
    // Float32 on both sides; the steps amplify rounding only slightly over a few steps.
    let tolerance = 1e-4 * scale + 1e-6;
    assert!(
        diff <= tolerance,
        "{name}: max|ours - reference| = {diff:e} > {tolerance:e}"
    );
}

cases!(
    c2d_layer_visualisation_conv2,
    s3d_layer_visualisation_mid,
    c2d_inverted_representation_conv2,
    s3d_inverted_representation_mid,
    c2d_deep_dream_conv2,
    c2d_deep_dream_conv2_filter,
    s3d_deep_dream_mid,
);

#[test]
fn every_optimise_case_is_listed() {
    for c in fixture_cases("cnnvis/optimise.json", "/cases") {
        let name = c["name"].as_str().unwrap();
        assert!(LISTED.contains(&name), "{name} is not in cases!()");
    }
}

/// The demo's vessel UNet and its angiogram (64^3, the size the export takes), min-max
/// normalised as the demo runs it: the folder of the model and the input's path.
fn vessels(test: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(&format!("optimise-{test}"));
    let root = fixtures().join("../../configs/vessels");
    let volume = esegeta::io::load_input(&root.join("vessels_00.nii.gz"))
        .unwrap()
        .tensor;
    let (lo, hi) = (volume.min(), volume.max());
    let x = (&volume - &lo) / (hi - lo);
    let input = dir.join("x.npy");
    x.contiguous().write_npy(&input).unwrap();
    (root.join("models"), input)
}

const LAYER: &str = "net.enc2";

/// The layer's activation for the image at `input` (captum.layer_activation).
fn activation(models: &Path, input: &Path) -> Tensor {
    explain(
        models,
        "unet.onnx",
        input.to_str().unwrap(),
        "captum.layer_activation",
        LAYER,
        &serde_json::json!({}),
    )
}

fn save(t: &Tensor, name: &str) -> PathBuf {
    let path = scratch(&format!("optimise-saved-{name}")).join(name);
    t.write_npy(&path).unwrap();
    path
}

fn norm(t: &Tensor) -> f64 {
    t.square().sum(Kind::Double).sqrt().double_value(&[])
}

#[test]
fn deep_dream_amplifies_the_layer_on_the_vessel_unet() {
    let (models, x) = vessels("dream");
    let params = serde_json::json!({"octaves": 3, "steps": 5, "jitter": 4});
    let dream = explain(
        &models,
        "unet.onnx",
        x.to_str().unwrap(),
        "cnnvis.deep_dream",
        LAYER,
        &params,
    );
    let before = norm(&activation(&models, &x));
    let after = norm(&activation(&models, &save(&dream, "dream.npy")));
    assert!(
        after >= 2.0 * before,
        "|A| went from {before:.4} to {after:.4}, not 2x"
    );
}

#[test]
fn layer_visualisation_excites_its_filter_on_the_vessel_unet() {
    let (models, x) = vessels("visualise");
    let filter = 3;
    let params = serde_json::json!({"filter": filter});
    let image = explain(
        &models,
        "unet.onnx",
        x.to_str().unwrap(),
        "cnnvis.layer_visualisation",
        LAYER,
        &params,
    );
    let random = Tensor::rand(image.size(), (Kind::Float, tch::Device::Cpu));
    let mean = |t: &Tensor, name: &str| {
        activation(&models, &save(t, name))
            .select(1, filter)
            .mean(Kind::Double)
            .double_value(&[])
    };
    let (optimised, baseline) = (mean(&image, "visualised.npy"), mean(&random, "random.npy"));
    assert!(
        optimised > 3.0 * baseline.max(1e-3),
        "the filter's mean is {optimised:.4} on the optimised image, {baseline:.4} on noise"
    );
}

#[test]
fn inverted_representation_matches_the_layer_on_the_vessel_unet() {
    let (models, x) = vessels("invert");
    // Half the default 200 steps: 3.5% of the distance from noise (200 steps: 2.6%).
    let params = serde_json::json!({"steps": 100});
    let image = explain(
        &models,
        "unet.onnx",
        x.to_str().unwrap(),
        "cnnvis.inverted_representation",
        LAYER,
        &params,
    );
    let target = activation(&models, &x);
    let distance = |t: &Tensor, name: &str| norm(&(activation(&models, &save(t, name)) - &target));
    let random = Tensor::rand(image.size(), (Kind::Float, tch::Device::Cpu));
    let (inverted, baseline) = (
        distance(&image, "inverted.npy"),
        distance(&random, "noise.npy"),
    );
    assert!(
        inverted < 0.1 * baseline,
        "the layer distance is {inverted:.4} from the inversion, {baseline:.4} from noise"
    );
}

#[test]
fn bad_parameters_are_refused_by_name() {
    let dir = fixture("layers");
    let out = scratch("optimise-bad").join("never.npy");
    for (method, params, expected) in [
        ("deep_dream", r#"{"steps": 0}"#, "steps"),
        (
            "deep_dream",
            r#"{"octave_scale": 0}"#,
            "octave_scale must be a finite number above 0",
        ),
        (
            "deep_dream",
            r#"{"lr": -1}"#,
            "lr must be a finite number above 0",
        ),
        (
            "deep_dream",
            r#"{"filter": 8}"#,
            "filter 8 is not a channel of layer `conv2`",
        ),
        (
            "layer_visualisation",
            r#"{"filter": 9}"#,
            "filter 9 is not a channel of layer `conv2`",
        ),
        (
            "layer_visualisation",
            r#"{"filter": 1, "lr": 0}"#,
            "lr must be a finite number above 0",
        ),
        ("inverted_representation", r#"{"steps": 0}"#, "steps"),
    ] {
        let mut cmd = esegeta();
        cmd.current_dir(&dir)
            .args([
                "explain",
                "--model",
                "classifier2d.onnx",
                "--input",
                "c2d_x.npy",
            ])
            .args(["--method", &format!("cnnvis.{method}"), "--layer", "conv2"])
            .args(["--params", params, "--out"])
            .arg(&out);
        let stderr = fails(&mut cmd);
        assert!(
            stderr.contains(expected),
            "{method} {params}: expected {expected:?} in:\n{stderr}"
        );
        assert!(!out.exists());
    }
    // A method that names no layer.
    let mut cmd = esegeta();
    cmd.current_dir(&dir)
        .args([
            "explain",
            "--model",
            "classifier2d.onnx",
            "--input",
            "c2d_x.npy",
        ])
        .args(["--method", "cnnvis.deep_dream", "--out"])
        .arg(&out);
    let stderr = fails(&mut cmd);
    assert!(stderr.contains("layer"), "{stderr}");
}
