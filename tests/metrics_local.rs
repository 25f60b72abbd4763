//! The localisation (relevance mass and rank accuracy, pointing game, ROC-AUC), faithfulness
//! (deletion, insertion) and sparseness metrics through `esegeta explain`, on the 2D classifier
//! and the 3D segmenter (argmax wrapper) of tests/fixtures.
//!
//! Every score must lie in its range; the localisation metrics and sparseness must equal what
//! this file computes, with its own plain implementation of each formula, from the map
//! `captum.saliency` writes; the deletion and insertion curves must equal the target scores this
//! file gets by perturbing the input itself and running the TorchScript model through tch.
//! Bad masks and bad `explained` methods must fail with errors that say what to fix.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

/// A model, its input and its task flags.
struct Setup {
    name: &'static str,
    model: &'static str,
    input: &'static str,
    flags: &'static [&'static str],
}

const CLASSIFIER: Setup = Setup {
    name: "classifier2d",
    model: "classifier2d.pt",
    input: "classifier2d_x.npy",
    flags: &["--target", "1"],
};

/// Two examples, for per-example scores.
const CLASSIFIER_BATCH: Setup = Setup {
    name: "classifier2d_x2",
    model: "classifier2d.pt",
    input: "classifier2d_x2.npy",
    flags: &["--target", "1"],
};

const SEGMENTER: Setup = Setup {
    name: "seg3d",
    model: "segmenter3d.pt",
    input: "seg3d_x.npy",
    flags: &[
        "--target",
        "1",
        "--task",
        "segmentation",
        "--wrapper",
        "argmax",
    ],
};

fn command(setup: &Setup, method: &str, params: &Value, out: &Path) -> std::process::Command {
    let mut cmd = explain_cmd(setup.model, setup.input, method);
    cmd.args(setup.flags)
        .args(["--params", &params.to_string()])
        .arg("--out")
        .arg(out);
    cmd
}

/// A scratch folder of its own for every call (tests run in parallel).
fn fresh(name: &str) -> PathBuf {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    scratch(&format!(
        "metrics-local-{name}-{}",
        CALLS.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Runs `method` and returns its output tensor and extras.
fn run_method(setup: &Setup, method: &str, params: Value, tag: &str) -> (Tensor, Value) {
    let out = fresh(&format!("{}-{tag}", setup.name)).join("out.npy");
    let (ok, stdout, stderr) = run(&mut command(setup, method, &params, &out));
    assert!(ok, "{method} on {}: {stderr}", setup.name);
    let extras = stdout
        .lines()
        .find_map(|l| l.strip_prefix("extras: "))
        .map(|e| serde_json::from_str(e).unwrap())
        .unwrap_or(Value::Null);
    (load(&out), extras)
}

/// A metric's scores, one per example.
fn metric(setup: &Setup, method: &str, params: Value) -> (Vec<f64>, Value) {
    let tag = method.trim_start_matches("metrics.");
    let (scores, extras) = run_method(setup, method, params, tag);
    assert_eq!(scores.dim(), 1, "{method}: one score per example");
    (
        Vec::<f64>::try_from(&scores.to_kind(Kind::Double)).unwrap(),
        extras,
    )
}

/// Runs `setup` expecting failure; returns stderr.
fn metric_fails(setup: &Setup, method: &str, params: Value, tag: &str) -> String {
    let out = fresh(&format!("{}-fail-{tag}", setup.name)).join("never.npy");
    let stderr = fails(&mut command(setup, method, &params, &out));
    assert!(!out.exists(), "nothing is written on failure");
    stderr
}

/// `captum.saliency`'s map (absolute gradients, Captum's default), as the metrics see it.
fn saliency(setup: &Setup) -> Tensor {
    run_method(setup, "captum.saliency", json!({}), "saliency").0
}

/// A mask file in a scratch folder.
fn mask_file(name: &str, mask: &Tensor) -> PathBuf {
    let path = fresh(&format!("mask-{name}")).join(format!("{name}.npy"));
    mask.write_npy(&path).unwrap();
    path
}

/// The 2D region: rows 2..6 and columns 1..5 of the 8x8 image.
fn square_mask() -> Tensor {
    let m = Tensor::zeros([8, 8], (Kind::Float, Device::Cpu));
    let _ = m.narrow(0, 2, 4).narrow(1, 1, 4).fill_(1.0);
    m
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

/// Per example: the voxel relevance (channels summed) of a `[B, C, ...]` map.
fn voxel_relevance(map: &Tensor) -> Vec<Vec<f64>> {
    let b = map.size()[0];
    (0..b)
        .map(|i| {
            values(
                &map.get(i)
                    .to_kind(Kind::Double)
                    .sum_dim_intlist(0, false, Kind::Double),
            )
        })
        .collect()
}

fn close(name: &str, ours: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(
        ours.len(),
        expected.len(),
        "{name}: {ours:?} vs {expected:?}"
    );
    for (o, e) in ours.iter().zip(expected) {
        assert!(
            (o - e).abs() <= tolerance,
            "{name}: {ours:?} vs expected {expected:?} (tolerance {tolerance:e})"
        );
    }
}

fn in_unit_range(name: &str, scores: &[f64]) {
    assert!(
        scores.iter().all(|s| (0.0..=1.0).contains(s)),
        "{name}: {scores:?} outside [0, 1]"
    );
}

// ---------------------------------------------------------------------------------------------
// The formulas, written plainly (no sorting tricks, no tensors) as the papers state them.

fn mass_accuracy(r: &[f64], inside: &[bool]) -> f64 {
    let positive = |v: &f64| v.max(0.0);
    let within: f64 = r
        .iter()
        .zip(inside)
        .filter(|(_, &m)| m)
        .map(|(v, _)| positive(v))
        .sum();
    within / r.iter().map(positive).sum::<f64>()
}

fn rank_accuracy(r: &[f64], inside: &[bool]) -> f64 {
    let k = inside.iter().filter(|&&m| m).count();
    let mut order: Vec<usize> = (0..r.len()).collect();
    order.sort_by(|&a, &b| r[b].total_cmp(&r[a]));
    assert!(r[order[k - 1]] > r[order[k]], "no tie at the K-th value");
    order[..k].iter().filter(|&&v| inside[v]).count() as f64 / k as f64
}

fn pointing(r: &[f64], inside: &[bool]) -> f64 {
    let best = (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
    assert_eq!(
        r.iter().filter(|&&v| v == r[best]).count(),
        1,
        "a unique maximum"
    );
    if inside[best] {
        1.0
    } else {
        0.0
    }
}

/// The fraction of (inside, outside) pairs ordered correctly, ties counting half.
fn roc_auc(r: &[f64], inside: &[bool]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (a, &ma) in r.iter().zip(inside) {
        for (b, &mb) in r.iter().zip(inside) {
            if ma && !mb {
                pairs += 1.0;
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    wins / pairs
}

/// Mean absolute difference over all pairs, over twice the mean: the Gini index.
fn gini(a: &[f64]) -> f64 {
    let n = a.len() as f64;
    let a: Vec<f64> = a.iter().map(|v| v.abs()).collect();
    let mean = a.iter().sum::<f64>() / n;
    let mut diff = 0.0;
    for x in &a {
        for y in &a {
            diff += (x - y).abs();
        }
    }
    diff / (2.0 * n * n * mean)
}

/// A formula of a localisation metric: relevance and region of one example to its score.
type Formula = fn(&[f64], &[bool]) -> f64;

/// The localisation metrics against the formulas, for each example of `setup`.
fn check_localisation(setup: &Setup, mask: &str, region: &[bool]) {
    let map = saliency(setup);
    let relevance = voxel_relevance(&map);
    let explained = json!({"method": "captum.saliency"});
    let params = json!({"explained": explained, "mask": mask});
    let expected = |f: Formula| -> Vec<f64> { relevance.iter().map(|r| f(r, region)).collect() };
    let checks: [(&str, Formula); 4] = [
        ("metrics.relevance_mass_accuracy", mass_accuracy),
        ("metrics.relevance_rank_accuracy", rank_accuracy),
        ("metrics.pointing_game", pointing),
        ("metrics.attribution_roc_auc", roc_auc),
    ];
    for (method, formula) in checks {
        let (scores, _) = metric(setup, method, params.clone());
        let name = format!("{method} on {}", setup.name);
        in_unit_range(&name, &scores);
        close(&name, &scores, &expected(formula), 1e-5);
    }
    // Saliency is non-negative: the signed and positive-only mass agree, and a generous
    // tolerance makes every pointing a hit.
    let (signed, _) = metric(
        setup,
        "metrics.relevance_mass_accuracy",
        json!({"explained": explained, "mask": mask, "positive_only": false}),
    );
    close("signed mass", &signed, &expected(mass_accuracy), 1e-5);
    let (hits, extras) = metric(
        setup,
        "metrics.pointing_game",
        json!({"explained": explained, "mask": mask, "tolerance": 100}),
    );
    assert!(hits.iter().all(|&h| h == 1.0), "{hits:?}");
    assert_eq!(extras["points"].as_array().unwrap().len(), relevance.len());
}

#[test]
fn localisation_on_the_2d_classifier_per_example() {
    let square = square_mask();
    let path = mask_file("square", &square);
    let region: Vec<bool> = values(&square).iter().map(|&v| v > 0.5).collect();
    check_localisation(&CLASSIFIER_BATCH, path.to_str().unwrap(), &region);
    // The mask with a batch and channel dimension is the same region.
    let shaped = mask_file("square_11", &square.reshape([1, 1, 8, 8]));
    let explained = json!({"method": "captum.saliency"});
    let (a, _) = metric(
        &CLASSIFIER_BATCH,
        "metrics.relevance_rank_accuracy",
        json!({"explained": explained, "mask": path.to_str().unwrap()}),
    );
    let (b, _) = metric(
        &CLASSIFIER_BATCH,
        "metrics.relevance_rank_accuracy",
        json!({"explained": explained, "mask": shaped.to_str().unwrap()}),
    );
    assert_eq!(a, b);
}

#[test]
fn localisation_on_the_3d_segmenter() {
    let roi = load(&fixture("roi.npy"));
    let region: Vec<bool> = values(&roi).iter().map(|&v| v > 0.5).collect();
    check_localisation(&SEGMENTER, "roi.npy", &region);
}

#[test]
fn sparseness_is_the_gini_index_of_the_map() {
    for setup in [&CLASSIFIER_BATCH, &SEGMENTER] {
        let map = saliency(setup);
        let (scores, _) = metric(
            setup,
            "metrics.sparseness",
            json!({"explained": {"method": "captum.saliency"}}),
        );
        let expected: Vec<f64> = (0..map.size()[0])
            .map(|i| gini(&values(&map.get(i))))
            .collect();
        let name = format!("sparseness on {}", setup.name);
        assert!(
            scores.iter().all(|s| (0.0..1.0).contains(s)),
            "{name}: {scores:?}"
        );
        close(&name, &scores, &expected, 1e-5);
    }
}

// ---------------------------------------------------------------------------------------------
// Faithfulness against the model run here

/// The target score of `x` as the task wrapper computes it: the classifier's column, or for the
/// argmax wrapper the sum of the class channel over the voxels whose argmax is the class.
fn target_score(model: &tch::CModule, x: &Tensor, segmentation: bool, target: i64) -> f64 {
    let out = tch::no_grad(|| model.forward_ts(&[x])).unwrap();
    let score = if segmentation {
        let class = out.argmax(1, false).eq(target).to_kind(Kind::Float);
        (out.select(1, target) * class).sum(Kind::Double)
    } else {
        out.select(1, target).sum(Kind::Double)
    };
    score.double_value(&[])
}

/// The curve by hand: rank the voxels by relevance (ties by index), replace the first
/// `floor(k N / steps)` of them in every channel, and run the model.
fn reference_curve(
    setup: &Setup,
    map: &Tensor,
    steps: i64,
    baseline: f64,
    insertion: bool,
    most_first: bool,
) -> Vec<f64> {
    let model = tch::CModule::load(fixture(setup.model)).unwrap();
    let x = load(&fixture(setup.input)).to_kind(Kind::Float);
    let r = &voxel_relevance(map)[0];
    let n = r.len() as i64;
    let mut order: Vec<usize> = (0..r.len()).collect();
    order.sort_by(|&a, &b| {
        let by_value = r[b].total_cmp(&r[a]);
        (if most_first {
            by_value
        } else {
            by_value.reverse()
        })
        .then(a.cmp(&b))
    });
    let spatial = &x.size()[2..];
    (0..=steps)
        .map(|k| {
            let replaced = (k * n / steps) as usize;
            let covered = Tensor::zeros([n], (Kind::Bool, Device::Cpu));
            for &v in &order[..replaced] {
                let _ = covered.get(v as i64).fill_(1);
            }
            let covered = covered.reshape([&[1, 1], spatial].concat().as_slice());
            let blank = x.full_like(baseline);
            let xk = if insertion {
                x.where_self(&covered, &blank)
            } else {
                blank.where_self(&covered, &x)
            };
            target_score(&model, &xk, setup.name == "seg3d", 1)
        })
        .collect()
}

fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    (1..x.len())
        .map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0)
        .sum()
}

/// Runs deletion or insertion and checks its curve and area against the reference.
fn check_curve(
    setup: &Setup,
    method: &str,
    params: Value,
    steps: i64,
    baseline: f64,
    most_first: bool,
) {
    let map = saliency(setup);
    let (scores, extras) = metric(setup, method, params);
    let insertion = method == "metrics.insertion";
    let expected = reference_curve(setup, &map, steps, baseline, insertion, most_first);
    let curve: Vec<f64> = extras["curves"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let fractions: Vec<f64> = extras["fractions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let name = format!("{method} on {}", setup.name);
    assert_eq!(fractions.len() as i64, steps + 1, "{name}");
    assert_eq!(
        (fractions[0], fractions[steps as usize]),
        (0.0, 1.0),
        "{name}"
    );
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    close(&name, &curve, &expected, 1e-4 * scale + 1e-5);
    assert_eq!(scores.len(), 1, "{name}");
    assert!(scores[0].is_finite(), "{name}: {scores:?}");
    close(
        &name,
        &scores,
        &[trapezoid(&fractions, &expected)],
        1e-4 * scale + 1e-5,
    );
    // The ends of the path: deletion starts at the input and ends at the baseline image.
    let x = load(&fixture(setup.input)).to_kind(Kind::Float);
    let model = tch::CModule::load(fixture(setup.model)).unwrap();
    let seg = setup.name == "seg3d";
    let (full, blank) = (
        target_score(&model, &x, seg, 1),
        target_score(&model, &x.full_like(baseline), seg, 1),
    );
    let (start, end) = if insertion {
        (blank, full)
    } else {
        (full, blank)
    };
    close(
        &name,
        &[curve[0], curve[steps as usize]],
        &[start, end],
        1e-4 * scale + 1e-5,
    );
}

#[test]
fn deletion_on_the_2d_classifier() {
    check_curve(
        &CLASSIFIER,
        "metrics.deletion",
        json!({"explained": {"method": "captum.saliency"}}),
        20,
        0.0,
        true,
    );
}

#[test]
fn insertion_on_the_2d_classifier_from_a_grey_baseline() {
    check_curve(
        &CLASSIFIER,
        "metrics.insertion",
        json!({"explained": {"method": "captum.saliency"}, "steps": 8, "baseline": 0.5}),
        8,
        0.5,
        true,
    );
}

#[test]
fn deletion_and_insertion_on_the_3d_segmenter() {
    check_curve(
        &SEGMENTER,
        "metrics.deletion",
        json!({"explained": {"method": "captum.saliency"}, "steps": 8}),
        8,
        0.0,
        true,
    );
    check_curve(
        &SEGMENTER,
        "metrics.insertion",
        json!({
            "explained": {"method": "captum.saliency"},
            "steps": 5,
            "order": "least_relevant_first"
        }),
        5,
        0.0,
        false,
    );
}

#[test]
fn faithfulness_gives_one_score_per_example() {
    let (scores, extras) = metric(
        &CLASSIFIER_BATCH,
        "metrics.deletion",
        json!({"explained": {"method": "captum.saliency"}, "steps": 4}),
    );
    assert_eq!(scores.len(), 2);
    assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
    assert_eq!(extras["curves"].as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Bad input

fn assert_contains(stderr: &str, parts: &[&str]) {
    for part in parts {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
}

#[test]
fn a_mask_of_the_wrong_shape_names_both_shapes() {
    let small = mask_file("small", &Tensor::ones([4, 4], (Kind::Float, Device::Cpu)));
    let e = metric_fails(
        &CLASSIFIER,
        "metrics.relevance_mass_accuracy",
        json!({"explained": {"method": "captum.saliency"}, "mask": small.to_str().unwrap()}),
        "small",
    );
    assert_contains(
        &e,
        &["`mask`", "small.npy", "[4, 4]", "[1, 3, 8, 8]", "[8, 8]"],
    );
    // The 3D region on the 2D classifier.
    let e = metric_fails(
        &CLASSIFIER,
        "metrics.pointing_game",
        json!({"explained": {"method": "captum.saliency"}, "mask": "roi.npy"}),
        "roi",
    );
    assert_contains(&e, &["roi.npy", "[8, 8, 8]", "[1, 3, 8, 8]"]);
}

#[test]
fn an_empty_mask_is_refused() {
    let empty = mask_file("empty", &Tensor::zeros([8, 8], (Kind::Float, Device::Cpu)));
    for method in [
        "metrics.relevance_rank_accuracy",
        "metrics.attribution_roc_auc",
    ] {
        let e = metric_fails(
            &CLASSIFIER,
            method,
            json!({"explained": {"method": "captum.saliency"}, "mask": empty.to_str().unwrap()}),
            method,
        );
        assert_contains(&e, &["`mask`", "empty.npy", "is empty", "above 0.5"]);
    }
}

#[test]
fn a_mask_covering_everything_has_no_roc_auc() {
    let all = mask_file("all", &Tensor::ones([8, 8], (Kind::Float, Device::Cpu)));
    let e = metric_fails(
        &CLASSIFIER,
        "metrics.attribution_roc_auc",
        json!({"explained": {"method": "captum.saliency"}, "mask": all.to_str().unwrap()}),
        "all",
    );
    assert_contains(&e, &["both inside and outside"]);
}

#[test]
fn an_unknown_explained_method_suggests_the_nearest() {
    let e = metric_fails(
        &SEGMENTER,
        "metrics.relevance_mass_accuracy",
        json!({"explained": {"method": "captum.salency"}, "mask": "roi.npy"}),
        "unknown",
    );
    assert_contains(
        &e,
        &["unknown method `captum.salency`", "`captum.saliency`"],
    );
    let e = metric_fails(
        &CLASSIFIER,
        "metrics.deletion",
        json!({"explained": {"method": "captum.saliency", "params": {"n_steps": 5}}}),
        "bad-params",
    );
    assert_contains(&e, &["captum.saliency", "n_steps"]);
    // A metric is not an attribution method: its "map" is one number per example.
    let e = metric_fails(
        &CLASSIFIER,
        "metrics.sparseness",
        json!({"explained": {"method": "metrics.sparseness", "params": {"explained": {"method": "captum.saliency"}}}}),
        "metric-of-metric",
    );
    assert_contains(
        &e,
        &["metrics.sparseness gave a map of shape [1]", "[1, 3, 8, 8]"],
    );
}

#[test]
fn unknown_and_out_of_range_parameters_are_refused() {
    let e = metric_fails(
        &CLASSIFIER,
        "metrics.deletion",
        json!({"explained": {"method": "captum.saliency"}, "steps": 0}),
        "steps0",
    );
    assert_contains(&e, &["steps"]);
    let e = metric_fails(
        &CLASSIFIER,
        "metrics.pointing_game",
        json!({"explained": {"method": "captum.saliency"}, "mask": "roi.npy", "tolerence": 2}),
        "typo",
    );
    assert_contains(&e, &["tolerence"]);
}
