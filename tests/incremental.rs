//! Exact incremental evaluation (host/src/model/onnx/incremental.rs): occlusion and feature
//! ablation on ONNX graphs recompute only what each perturbation reaches, and their maps equal
//! Captum's (fixtures from tools/make_incremental_fixtures.py) within 1e-4 of the map's scale;
//! on every ONNX fixture model, evaluation near a recorded input equals a full forward pass.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

folder_cases!(
    "incremental",
    resnet_occlusion,
    resnet_occlusion_baseline,
    resnet_feature_ablation,
    resnet_feature_ablation_split,
    unet3d_roi_occlusion,
    unet3d_argmax_feature_ablation,
    windows2d_occlusion,
    windows2d_feature_ablation_split,
    transposed2d_occlusion,
    transposed2d_feature_ablation_split,
);

/// The share of full evaluations' work the log says the perturbed examples took.
fn computed_share(log: &str) -> f64 {
    let at = log
        .find("% of a full evaluation's multiply-adds")
        .expect("the share in the log");
    let digits: String = log[..at]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

#[test]
fn the_log_says_where_the_change_covers_a_whole_layer() {
    let log = occlusion_log(
        "incremental/resnet_like.onnx",
        "incremental/resnet_like_x.npy",
        r#"{"sliding_window_shapes": [3, 8, 8], "strides": [3, 8, 8]}"#,
        &["--target", "2"],
    );
    assert!(
        log.contains("incremental evaluation: nodes before"),
        "{log}"
    );
    assert!(log.contains("runs in full"), "{log}");
    let share = computed_share(&log);
    assert!(
        share < 80.0,
        "8x8 windows on 64x64 computed {share}%:\n{log}"
    );
}

#[test]
fn transposed_convolutions_keep_the_change_local() {
    // The first node a window reaches in full is the global mean after the decoder: the three
    // transposed convolutions before it computed boxes.
    let log = occlusion_log(
        "incremental/transposed2d.onnx",
        "incremental/transposed2d_x.npy",
        r#"{"sliding_window_shapes": [3, 4, 4], "strides": [3, 4, 4]}"#,
        &["--target", "0"],
    );
    assert!(log.contains("(ReduceMean, layer"), "{log}");
    let share = computed_share(&log);
    assert!(
        share < 80.0,
        "4x4 windows on 24x24 computed {share}%:\n{log}"
    );
}

#[test]
fn instance_norm_sends_the_rest_of_the_graph_to_full_evaluation() {
    // Instance norm's statistics span the whole volume: a change anywhere reaches everything.
    let log = occlusion_log(
        "onnx/unet3d_strided.onnx",
        "onnx/unet3d_strided_x1.npy",
        r#"{"sliding_window_shapes": [1, 2, 2, 2], "strides": 2}"#,
        &["--task", "segmentation", "--target", "1"],
    );
    assert!(
        log.contains("(InstanceNormalization, layer `enc.1`)"),
        "{log}"
    );
}

#[test]
fn incremental_false_gives_the_same_map() {
    let dir = scratch("incremental-off");
    let mut maps = Vec::new();
    let case = case("windows2d_occlusion");
    for incremental in [true, false] {
        let out = dir.join(format!("{incremental}.npy"));
        let mut params = case["params"].clone();
        params["incremental"] = incremental.into();
        let params = params.to_string();
        let mut cmd = explain_cmd(
            "incremental/windows2d.onnx",
            "incremental/windows2d_x.npy",
            "captum.occlusion",
        );
        cmd.args(["--params", &params, "--target", "1", "--out"])
            .arg(&out);
        let (ok, _, stderr) = run(&mut cmd);
        assert!(ok, "{stderr}");
        maps.push(load(&out));
    }
    let (diff, scale) = max_diff(&maps[0], &maps[1]);
    // Same ops on windows instead of whole values: rounding only, of scores that are larger
    // than their differences (the map), so 1e-4 of the map's scale, as against Captum.
    assert!(diff <= 1e-4 * scale, "{diff:e} of {scale:e}");
}

/// `base` with a box of random values at a random place in each of `batch` copies; boxes
/// touch the borders too.
fn perturbed_copies(base: &Tensor, batch: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let size = base.size();
    let copies = base.repeat([batch, 1, 1, 1, 1][..size.len()].to_vec());
    for b in 0..batch {
        let mut region = copies.get(b);
        for (d, &n) in size.iter().enumerate().skip(1) {
            let len = (n / 3 + b).clamp(1, n);
            let start = match b % 3 {
                0 => 0,
                1 => n - len,
                _ => (n - len) / 2,
            };
            region = region.narrow(d as i64 - 1, start, len);
        }
        let noise = Tensor::rand(region.size(), (Kind::Float, Device::Cpu));
        region.copy_(&noise);
    }
    copies
}

#[test]
fn evaluation_near_a_recorded_input_equals_a_full_forward_pass() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("onnx/manifest.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for m in manifest["models"].as_array().unwrap() {
        // Graphs with a batch axis that follows the input (not the hand-built spec graphs).
        if m["dynamic"] != true {
            continue;
        }
        let name = m["name"].as_str().unwrap();
        let outputs = m["cases"][0]["outputs"].as_array().map_or(1, |o| o.len());
        let base = load(&fixture(&format!("onnx/{name}_x1.npy")));
        if base.dim() < 3 {
            continue;
        }
        for output in 0..outputs {
            let path = fixture(&format!("onnx/{name}.onnx"));
            let model = esegeta::model::load(&path, Device::Cpu, Kind::Float, output).unwrap();
            let graph = model.graph().unwrap();
            let recorded = tch::no_grad(|| graph.record(&base)).unwrap().unwrap();
            let inputs = perturbed_copies(&base, 3, checked);
            let (near, _) = tch::no_grad(|| graph.forward_near(&recorded, &inputs))
                .unwrap_or_else(|e| panic!("{name} output {output}: {e:#}"));
            let full = tch::no_grad(|| model.forward(&inputs)).unwrap();
            let (diff, scale) = max_diff(&near, &full);
            // The same ops on windows of their inputs: float rounding only.
            assert!(
                diff <= 1e-5 * scale + 1e-6,
                "{name} output {output}: max|near - full| = {diff:e}, max|full| = {scale:e}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} model outputs checked");
}
