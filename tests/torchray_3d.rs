//! The torchray plugin on 3D volumes and through the segmentation wrappers, which TorchRay
//! itself does not take: each method checked against what it promises, computed
//! independently (Captum's layer methods on the same layer, the weighted mask sum of RISE
//! computed here from the model's own outputs), and its bad parameters refused by name.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tch::{Kind, Tensor};

const SEG: [&str; 6] = [
    "--task",
    "segmentation",
    "--wrapper",
    "argmax",
    "--target",
    "1",
];

/// `esegeta explain` of `method` on the 3D segmenter of tests/fixtures/layers, with `extra`.
fn explain3d(dir: &Path, name: &str, method: &str, extra: &[&str]) -> Tensor {
    explain_model(dir, name, "segmenter3d.onnx", method, extra)
}

/// [`explain3d`] on another `model` (a path from tests/fixtures/layers).
fn explain_model(dir: &Path, name: &str, model: &str, method: &str, extra: &[&str]) -> Tensor {
    let out = dir.join(name);
    let mut cmd = esegeta();
    cmd.current_dir(fixture("layers"))
        .args(["explain", "--model", model, "--input", "s3d_x.npy"])
        .args(["--method", method])
        .args(extra)
        .arg("--out")
        .arg(&out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{method}: {stderr}");
    load(&out)
}

fn close(ours: &Tensor, reference: &Tensor, what: &str) {
    assert_eq!(ours.size(), reference.size(), "{what}");
    let (diff, scale) = max_diff(ours, reference);
    assert!(scale > 0.0, "{what}: an all-zero reference tests nothing");
    // The same float32 arithmetic in another order: rounding only.
    assert!(diff <= 1e-5 * scale, "{what}: {diff:e} of {scale:e}");
}

#[test]
fn gradient_grad_cam_and_linear_approx_in_3d_equal_their_captum_counterparts() {
    let dir = scratch("torchray-3d-layers");
    let args = |extra: &[&'static str]| [&SEG[..], extra].concat();
    let ours = explain3d(&dir, "g.npy", "torchray.gradient", &args(&[]));
    // One input channel: the largest |gradient| over channels is |gradient|.
    let captum = explain3d(&dir, "s.npy", "captum.saliency", &args(&[]));
    close(&ours, &captum, "gradient");

    let layer = ["--layer", "mid"];
    let ours = explain3d(&dir, "gc.npy", "torchray.grad_cam", &args(&layer));
    let relu = [
        "--layer",
        "mid",
        "--params",
        r#"{"relu_attributions": true}"#,
    ];
    let captum = explain3d(&dir, "lgc.npy", "captum.layer_grad_cam", &args(&relu));
    close(&ours, &captum, "grad_cam");
    assert_eq!(ours.size(), [1, 1, 4, 4, 4]);
    let resized = explain3d(
        &dir,
        "gcr.npy",
        "torchray.grad_cam",
        &args(&["--layer", "mid", "--params", r#"{"resize": true}"#]),
    );
    let by_hand = ours.upsample_trilinear3d([8, 8, 8], false, None, None, None);
    close(&resized, &by_hand, "grad_cam resized");

    let ours = explain3d(&dir, "la.npy", "torchray.linear_approx", &args(&layer));
    let gxa = explain3d(
        &dir,
        "gxa.npy",
        "captum.layer_gradient_x_activation",
        &args(&layer),
    );
    close(
        &ours,
        &gxa.sum_dim_intlist(1, true, Kind::Float),
        "linear_approx",
    );
}

#[test]
fn smoothing_a_3d_map_blurs_it_along_every_axis() {
    let dir = scratch("torchray-3d-smooth");
    let plain = explain3d(&dir, "p.npy", "torchray.gradient", &SEG);
    let params = ["--params", r#"{"smooth": 0.1}"#];
    let smooth = explain3d(
        &dir,
        "s.npy",
        "torchray.gradient",
        &[&SEG[..], &params].concat(),
    );
    assert_eq!(smooth.size(), plain.size());
    // A blur lowers the peak and raises the trough, and averaging keeps the values between.
    let (peak, trough) = (
        |t: &Tensor| t.max().double_value(&[]),
        |t: &Tensor| t.min().double_value(&[]),
    );
    assert!(peak(&smooth) < peak(&plain) && trough(&smooth) >= trough(&plain));
    // Along every axis: the blurred map varies less along each than the map does.
    for axis in 2..5 {
        let variation = |t: &Tensor| {
            t.diff(1, axis, None::<Tensor>, None::<Tensor>)
                .abs()
                .sum(Kind::Double)
                .double_value(&[])
        };
        assert!(variation(&smooth) < variation(&plain), "axis {axis}");
    }
}

/// The masks of a 3D RISE run: four boxes and their complements, `[8, 1, 8, 8, 8]`.
fn box_masks(path: &Path) -> Tensor {
    let masks = Tensor::zeros([8, 1, 8, 8, 8], (Kind::Float, tch::Device::Cpu));
    for i in 0..4 {
        let m = masks.get(i);
        let _ = m.narrow(1 + (i % 3), 0, 4).fill_(1.0);
        masks.get(i + 4).copy_(&(1.0 - &m));
    }
    masks.write_npy(path).unwrap();
    masks
}

#[test]
fn rise_with_given_masks_is_the_score_weighted_mask_sum_in_3d() {
    let dir = scratch("torchray-3d-rise");
    let masks_path = dir.join("masks.npy");
    let masks = box_masks(&masks_path);
    let params = format!(
        r#"{{"filter_masks": "{}", "score": "raw"}}"#,
        masks_path.display()
    );
    let mask_wrapper = ["--task", "segmentation", "--wrapper", "mask", "--mask"];
    let region = fixture("layers/s3d_x.npy");
    let region_path = dir.join("region.npy");
    // The region: the voxels of the input above its median.
    let x = load(&region);
    let r = x
        .gt(x.median().double_value(&[]))
        .to_kind(Kind::Float)
        .squeeze();
    r.write_npy(&region_path).unwrap();
    let ours = explain_model(
        &dir,
        "rise.npy",
        "../segmenter3d.pt",
        "torchray.rise",
        &[
            &mask_wrapper[..],
            &[
                region_path.to_str().unwrap(),
                "--target",
                "0",
                "--params",
                &params,
            ],
        ]
        .concat(),
    );
    // By hand: score_i = sum over the region of the model's channel 0 on x * M_i.
    let model = tch::CModule::load(fixture("segmenter3d.pt")).unwrap();
    let scores = tch::no_grad(|| model.forward_ts(&[&x * &masks]).unwrap());
    let s =
        (scores.narrow(1, 0, 1) * &r).sum_dim_intlist([1, 2, 3, 4].as_slice(), false, Kind::Float);
    let by_hand = (s.view([8, 1, 1, 1, 1]) * &masks).sum_dim_intlist(0, true, Kind::Float) / 8.0;
    close(&ours, &by_hand, "rise");
}

fn rise_error(dir: &Path, params: &str) -> String {
    let mut cmd = esegeta();
    cmd.current_dir(fixture("layers"))
        .args([
            "explain",
            "--model",
            "segmenter3d.onnx",
            "--input",
            "s3d_x.npy",
        ])
        .args(["--method", "torchray.rise", "--params", params])
        .args(SEG)
        .arg("--out")
        .arg(dir.join("never.npy"));
    fails(&mut cmd)
}

#[test]
fn bad_rise_masks_are_refused_naming_filter_masks() {
    let dir = scratch("torchray-3d-rise-bad");
    let missing = rise_error(&dir, r#"{"filter_masks": "nowhere.npy"}"#);
    assert!(
        missing.contains("filter_masks") && missing.contains("nowhere.npy"),
        "{missing}"
    );
    let text: PathBuf = dir.join("text.npy");
    std::fs::write(&text, "not an array").unwrap();
    let e = rise_error(
        &dir,
        &format!(r#"{{"filter_masks": "{}"}}"#, text.display()),
    );
    assert!(e.contains("filter_masks"), "{e}");
    let wrong = dir.join("wrong.npy");
    Tensor::ones([4, 1, 8, 8], (Kind::Float, tch::Device::Cpu))
        .write_npy(&wrong)
        .unwrap();
    let e = rise_error(
        &dir,
        &format!(r#"{{"filter_masks": "{}"}}"#, wrong.display()),
    );
    assert!(
        e.contains("filter_masks") && e.contains("[N, 1, 8, 8, 8]"),
        "{e}"
    );
    let e = rise_error(&dir, r#"{"p": 1.5}"#);
    assert!(e.contains("p"), "{e}");
}

#[test]
fn rise_with_random_masks_repeats_with_its_seed() {
    let dir = scratch("torchray-3d-rise-random");
    let params = |seed: u64| format!(r#"{{"num_masks": 64, "num_cells": 3, "seed": {seed}}}"#);
    let args = |p: &str| -> Vec<String> {
        SEG.iter()
            .map(|s| s.to_string())
            .chain(["--params".into(), p.to_string()])
            .collect()
    };
    let run_seed = |name: &str, seed: u64| {
        let a = args(&params(seed));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        explain3d(&dir, name, "torchray.rise", &a)
    };
    let a = run_seed("a.npy", 3);
    let b = run_seed("b.npy", 3);
    let c = run_seed("c.npy", 4);
    assert_eq!(a.size(), [1, 1, 8, 8, 8]);
    assert!(a.equal(&b), "the same seed gives the same masks");
    assert!(!a.equal(&c), "another seed gives other masks");
}

/// Extremal perturbation on a volume: the vessel UNet of configs/vessels (trained) through the
/// threshold wrapper on a 24^3 crop of an angiogram, fading to zero. The mask keeps about the
/// area asked, and the score it preserves (its reward) beats that of a mask with the same
/// values in shuffled places, which RISE with that one mask (raw score) measures:
/// `map = score(x * m) * m`.
#[test]
fn extremal_perturbation_in_3d_keeps_its_area_and_beats_a_shuffled_mask() {
    let dir = scratch("torchray-3d-extremal");
    let volume =
        esegeta::io::load_input(&fixtures().join("../../configs/vessels/vessels_00.nii.gz"))
            .unwrap()
            .tensor;
    let crop = (2..5).fold(volume, |t, d| {
        let n = t.size()[d];
        t.narrow(d as i64, (n - 24) / 2, 24)
    });
    let input = dir.join("crop.npy");
    crop.write_npy(&input).unwrap();
    let model = fixtures().join("../../configs/vessels/models/unet.pt");
    let run_method = |name: &str, method: &str, params: &str| {
        let out = dir.join(name);
        let mut cmd = esegeta();
        cmd.args(["explain", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(&input)
            .args(["--method", method, "--params", params])
            .args(["--wrapper", "threshold", "--target", "1", "--out"])
            .arg(&out);
        let (ok, stdout, stderr) = run(&mut cmd);
        assert!(ok, "{method}: {stderr}");
        (load(&out), stdout)
    };
    let params = r#"{"areas": [0.05], "max_iter": 60, "step": 3, "sigma": 1.5, "perturbation": "fade", "relative_reward": true}"#;
    let (mask, stdout) = run_method("mask.npy", "torchray.extremal_perturbation", params);
    assert_eq!(mask.size(), [1, 1, 24, 24, 24]);
    let area = mask.mean(Kind::Double).double_value(&[]);
    assert!((area - 0.05).abs() <= 0.03, "area {area}");
    let extras: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("extras: "))
            .unwrap(),
    )
    .unwrap();
    let reward = extras["reward"][0][0].as_f64().unwrap();
    let score_of = |m: &Tensor, name: &str| {
        let path = dir.join(format!("{name}_masks.npy"));
        m.write_npy(&path).unwrap();
        let params = format!(
            r#"{{"filter_masks": "{}", "score": "raw"}}"#,
            path.display()
        );
        let (map, _) = run_method(&format!("{name}_rise.npy"), "torchray.rise", &params);
        map.sum(Kind::Double).double_value(&[]) / m.sum(Kind::Double).double_value(&[])
    };
    // The measurement agrees with the method's own reward (float32 sums of 13824 voxels).
    let own = score_of(&mask, "own");
    assert!(
        (own - reward).abs() <= 1e-3 * reward.abs(),
        "{own} against {reward}"
    );
    tch::manual_seed(0);
    let order = Tensor::randperm(mask.numel() as i64, (Kind::Int64, tch::Device::Cpu));
    let shuffled = mask.flatten(0, -1).index_select(0, &order).view_as(&mask);
    let other = score_of(&shuffled, "shuffled");
    assert!(
        reward > other,
        "the mask keeps {reward}, a shuffled one {other}"
    );
}

#[test]
fn bad_extremal_parameters_are_refused_by_name() {
    let dir = scratch("torchray-3d-extremal-bad");
    let error = |params: &str| {
        let mut cmd = esegeta();
        cmd.current_dir(fixture("layers"))
            .args([
                "explain",
                "--model",
                "segmenter3d.onnx",
                "--input",
                "s3d_x.npy",
            ])
            .args([
                "--method",
                "torchray.extremal_perturbation",
                "--params",
                params,
            ])
            .args(SEG)
            .arg("--out")
            .arg(dir.join("never.npy"));
        fails(&mut cmd)
    };
    let e = error(r#"{"areas": [0.1, 1.5]}"#);
    assert!(e.contains("areas[1] is 1.5") && e.contains("(0, 1)"), "{e}");
    let e = error(r#"{"variant": "keep"}"#);
    assert!(e.contains("params.variant"), "{e}");
    let e = error(r#"{"perturbation": "noise"}"#);
    assert!(e.contains("params.perturbation"), "{e}");
}
