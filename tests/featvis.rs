//! The featvis plugin's feature visualisation against Lucent 0.1.8's `render_vis` on small
//! ONNX classifiers (tools/make_featvis_fixtures.py ran Lucent): with Lucent's deterministic
//! settings, esegeta starts from the same random spectrum or pixels and must reach the same
//! image, `max|ours - Lucent| <= 1e-3 * max|Lucent| + 1e-6` (they agree to about 1e-7). The
//! random transforms and 3D images, which Lucent cannot be matched on, are checked for what
//! the optimisation must do: raise the unit's activation.

#[macro_use]
mod common;

use std::path::Path;

use common::*;

folder_cases!(
    "featvis",
    rgb_conv2_channel,
    rgb_act1_pixels,
    rgb_conv2_imagenet,
    grey_conv2_channel,
    grey_conv2_neuron,
    rgb_conv2_layer,
    rgb_conv2_direction,
    rgb_diversity_sum,
    grey_neuron_batch_sum,
);

/// A segmentation model's scores go through the argmax wrapper (the render does not use them).
fn task(model: &str) -> &'static [&'static str] {
    if model.contains("segmenter") {
        &["--task", "segmentation", "--wrapper", "argmax"]
    } else {
        &[]
    }
}

fn render(model: &str, input: &str, layer: &str, params: &str, out: &Path) -> (bool, String) {
    let mut cmd = esegeta();
    cmd.current_dir(fixtures())
        .args(["explain", "--model", model, "--input", input])
        .args(task(model))
        .args([
            "--method",
            "featvis.feature_visualisation",
            "--layer",
            layer,
        ])
        .args(["--params", params, "--out"])
        .arg(out);
    let (ok, _, stderr) = run(&mut cmd);
    (ok, stderr)
}

/// The layer's channel, averaged, for `image` (through `captum.layer_activation`).
fn channel_mean(model: &str, image: &Path, layer: &str, channel: i64, out: &Path) -> f64 {
    let mut cmd = explain_cmd(model, image.to_str().unwrap(), "captum.layer_activation");
    cmd.args(task(model))
        .args(["--layer", layer, "--out"])
        .arg(out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    load(out)
        .select(1, channel)
        .mean(tch::Kind::Float)
        .double_value(&[])
}

/// With Lucent's random transforms, on a 2D model and on the 3D segmenter: the rendered image
/// excites the channel more than the random start does (0 steps cannot be asked for, so the
/// start is a 1-step render with a learning rate too small to move it).
#[test]
fn rendering_with_transforms_raises_the_channel_in_2d_and_3d() {
    let dir = scratch("featvis-transforms");
    for (model, input, layer, channel, extra) in [
        ("featvis/grey.onnx", "featvis/grey_x.npy", "conv2", 2, ""),
        (
            "layers/segmenter3d.onnx",
            "layers/s3d_x.npy",
            "mid",
            3,
            r#", "steps": 128"#,
        ),
    ] {
        let start = dir.join("start.npy");
        let params = format!(r#"{{"channel": {channel}, "steps": 1, "learning_rate": 1e-9}}"#);
        let (ok, stderr) = render(model, input, layer, &params, &start);
        assert!(ok, "{model}: {stderr}");
        let end = dir.join("end.npy");
        let params = format!(r#"{{"channel": {channel}{extra}}}"#);
        let (ok, stderr) = render(model, input, layer, &params, &end);
        assert!(ok, "{model}: {stderr}");
        assert_eq!(load(&end).size(), load(&fixtures().join(input)).size());
        let before = channel_mean(model, &start, layer, channel, &dir.join("a.npy"));
        let after = channel_mean(model, &end, layer, channel, &dir.join("b.npy"));
        assert!(
            after > before,
            "{model}: channel mean {before} before, {after} after"
        );
    }
}

#[test]
fn a_channel_or_neuron_outside_the_layer_is_refused_by_name() {
    let out = scratch("featvis-errors").join("never.npy");
    for (params, parts) in [
        (
            r#"{"channel": 8, "steps": 1}"#,
            ["channel 8", "layer `conv2`"],
        ),
        (
            r#"{"channel": 0, "steps": 1, "neuron": [9, 9]}"#,
            ["neuron [9, 9]", "layer `conv2`"],
        ),
    ] {
        let (ok, stderr) = render(
            "featvis/grey.onnx",
            "featvis/grey_x.npy",
            "conv2",
            params,
            &out,
        );
        assert!(!ok, "{params} was accepted");
        for part in parts {
            assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
        }
        assert!(!out.exists());
    }
}

#[test]
fn objectives_that_cannot_be_evaluated_are_refused_by_name() {
    let out = scratch("featvis-objective-errors").join("never.npy");
    for (layer, params, part) in [
        (
            None,
            r#"{"objective": {"layer": {}}, "steps": 1}"#,
            "the layer objective names no layer",
        ),
        (
            Some("conv2"),
            r#"{"channel": 1, "objective": {"layer": {}}, "steps": 1}"#,
            "give either `objective` or `channel`",
        ),
        (
            Some("conv2"),
            r#"{"objective": {"direction": {"direction": [1, 2]}}, "steps": 1}"#,
            "the direction has 2 numbers, but layer `conv2` has 8 channels",
        ),
        (
            Some("conv2"),
            r#"{"objective": {"channel": {"channel": 0, "batch": 2}}, "batch": 2, "steps": 1}"#,
            "batch 2 is not an image of the render at layer `conv2`, which has 2",
        ),
        (Some("conv2"), r#"{"steps": 1}"#, "give `channel`"),
    ] {
        let mut cmd = esegeta();
        cmd.current_dir(fixtures())
            .args(["explain", "--model", "featvis/grey.onnx"])
            .args(["--input", "featvis/grey_x.npy"])
            .args(["--method", "featvis.feature_visualisation"])
            .args(["--params", params, "--out"])
            .arg(&out);
        if let Some(layer) = layer {
            cmd.args(["--layer", layer]);
        }
        let stderr = fails(&mut cmd);
        assert!(
            stderr.contains(part),
            "{params}: expected {part:?} in:\n{stderr}"
        );
        assert!(!out.exists());
    }
}

/// In 3D, which Lucent cannot render: a weighted sum of the layer, direction and diversity objectives over a batch of two volumes
/// renders both on the input's grid and raises the layer's mean above the start's. (Without
/// the random transforms: on an 8^3 volume their padding and shifts dominate a layer's mean;
/// the 2D batches above go through them.)
#[test]
fn composed_objectives_render_batches_of_volumes() {
    let dir = scratch("featvis-3d-objectives");
    let objective = r#"{"sum": [{"objective": {"layer": {}}},
        {"weight": 0.1, "objective": {"direction": {"direction": [1, 0, 0, 0, 0, 0, 0, -1]}}},
        {"weight": -0.01, "objective": {"diversity": {}}}]}"#;
    let mut renders = Vec::new();
    for (name, steps, lr) in [("start.npy", 1, 1e-9), ("end.npy", 128, 0.05)] {
        let params = format!(
            r#"{{"objective": {objective}, "batch": 2, "steps": {steps}, "learning_rate": {lr},
                "transforms": "none"}}"#
        );
        let out = dir.join(name);
        let (ok, stderr) = render(
            "layers/segmenter3d.onnx",
            "layers/s3d_x.npy",
            "mid",
            &params,
            &out,
        );
        assert!(ok, "{stderr}");
        assert_eq!(load(&out).size(), [2, 1, 8, 8, 8]);
        renders.push(out);
    }
    let layer_mean = |image: &Path, out: &str| {
        let mut cmd = explain_cmd(
            "layers/segmenter3d.onnx",
            image.to_str().unwrap(),
            "captum.layer_activation",
        );
        cmd.args(task("segmenter"))
            .args(["--layer", "mid", "--out"])
            .arg(dir.join(out));
        let (ok, _, stderr) = run(&mut cmd);
        assert!(ok, "{stderr}");
        load(&dir.join(out))
            .mean(tch::Kind::Float)
            .double_value(&[])
    };
    let (before, after) = (
        layer_mean(&renders[0], "a.npy"),
        layer_mean(&renders[1], "b.npy"),
    );
    assert!(
        after > before,
        "the layer's mean went from {before} to {after}"
    );
}
