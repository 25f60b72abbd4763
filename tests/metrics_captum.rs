//! captum.infidelity and captum.sensitivity_max against Captum 0.9's own metrics. The cases in
//! tests/fixtures/metrics/captum_metrics.json come from tools/make_metric_fixtures.py, which
//! ran each case through Captum 20 times with different seeds.
//!
//! Both metrics sample, and Captum's draws (torch) are not ours (StdRng), so values are
//! compared statistically: `|ours - captum_mean| <= 3 * spread` per example, where spread is
//! the largest distance of one of Captum's runs from their mean, i.e. we must agree with
//! Captum about as well as Captum agrees with itself. Cases that do not depend on the draws
//! (a square removal as large as the input has a single place) have no spread; they must
//! agree to float32 rounding: `1e-3 * |captum| + 1e-9`.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

fn cases() -> Vec<Value> {
    fixture_cases("metrics/captum_metrics.json", "/cases")
}

fn case(name: &str) -> Value {
    fixture_case(cases(), name)
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// One metric run through `esegeta explain`: the scores as written to the npy file, after
/// checking that the file holds one score per example and agrees with the extras.
fn scores(tag: &str, method: &str, input: &str, params: &Value, seed: u64) -> Vec<f64> {
    let out = scratch(&format!("metrics-captum-{tag}")).join("scores.npy");
    let mut cmd = explain_cmd("classifier2d.pt", input, method);
    cmd.args(["--params", &params.to_string()])
        .args(["--target", "1", "--seed", &seed.to_string()])
        .arg("--out")
        .arg(&out);
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{tag}: esegeta failed: {stderr}");
    let written = load(&out);
    let batch = load(&fixture(input)).size()[0];
    assert_eq!(written.size(), vec![batch], "{tag}: one score per example");
    let written: Vec<f64> = Vec::<f64>::try_from(written.to_kind(tch::Kind::Double)).unwrap();
    let extras: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("extras: "))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("{tag}: no extras printed: {stdout}"));
    let key = method.strip_prefix("captum.").unwrap();
    let extra = floats(&extras[key]);
    for (w, e) in written.iter().zip(&extra) {
        assert!(
            (w - e).abs() <= 1e-6 * e.abs() + 1e-30,
            "{tag}: npy {written:?} and extras {extra:?} differ"
        );
    }
    extra
}

fn case_scores(c: &Value, tag: &str, params: &Value, seed: u64) -> Vec<f64> {
    scores(
        tag,
        c["method"].as_str().unwrap(),
        c["input"].as_str().unwrap(),
        params,
        seed,
    )
}

/// `ours` within the tolerance of the case's Captum values (see the top of this file).
fn assert_agrees(c: &Value, tag: &str, ours: &[f64]) {
    let mean = floats(&c["captum_mean"]);
    let spread = floats(&c["captum_max_abs_dev"]);
    assert_eq!(ours.len(), mean.len(), "{tag}: batch size");
    for (b, ((o, m), s)) in ours.iter().zip(&mean).zip(&spread).enumerate() {
        // 3 x Captum's own spread across seeds; float32 rounding where it has none.
        let tolerance = if *s > 0.0 {
            3.0 * s
        } else {
            1e-3 * m.abs() + 1e-9
        };
        assert!(
            (o - m).abs() <= tolerance,
            "{tag}, example {b}: ours {o:e}, Captum's mean {m:e} over {} runs (spread {s:e}); \
             |ours - captum| = {:e} > tolerance {tolerance:e}",
            c["captum_runs"].as_array().unwrap().len(),
            (o - m).abs()
        );
    }
}

fn check(name: &str) {
    let c = case(name);
    let ours = case_scores(&c, name, &c["params"], 0);
    assert_agrees(&c, name, &ours);
}

cases!(
    infidelity_saliency,
    infidelity_saliency_b2,
    infidelity_saliency_normalize_b2,
    infidelity_gradient,
    infidelity_ig,
    infidelity_ig_square_b2,
    infidelity_ig_square_full,
    infidelity_gradient_square_full_b2,
    sensitivity_saliency_b2,
    sensitivity_saliency_inf_b2,
    sensitivity_saliency_l1,
    sensitivity_ig,
);

#[test]
fn every_fixture_case_is_tested() {
    let all: BTreeSet<String> = cases()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let listed: BTreeSet<String> = LISTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        all, listed,
        "captum_metrics.json and the cases! list differ"
    );
}

/// `params` with `key` set to `value`.
fn with(params: &Value, key: &str, value: Value) -> Value {
    let mut p = params.clone();
    p[key] = value;
    p
}

/// Batching changes which draw goes to which sample but not the distribution: the same
/// tolerance holds with small batches and a last, shorter one (2000 samples in batches of
/// 3 per example; 50 in batches of 1).
#[test]
fn batching_keeps_the_values() {
    let c = case("infidelity_saliency_b2");
    let params = with(&c["params"], "max_examples_per_batch", json!(7));
    assert_agrees(
        &c,
        "infidelity batches of 7",
        &case_scores(&c, "batch7", &params, 0),
    );
    let c = case("sensitivity_saliency_b2");
    let params = with(&c["params"], "max_examples_per_batch", json!(2));
    assert_agrees(
        &c,
        "sensitivity batches of 2",
        &case_scores(&c, "batch2", &params, 0),
    );
}

/// The same seed gives the same scores; another seed other ones.
#[test]
fn the_seed_repeats_a_run() {
    for name in ["infidelity_saliency_b2", "sensitivity_ig"] {
        let c = case(name);
        let p = with(&c["params"], "n_perturb_samples", json!(20));
        let first = case_scores(&c, "seed-a", &p, 7);
        assert_eq!(
            first,
            case_scores(&c, "seed-b", &p, 7),
            "{name}: seed 7 twice"
        );
        assert_ne!(
            first,
            case_scores(&c, "seed-c", &p, 8),
            "{name}: seeds 7 and 8"
        );
    }
}

/// Without noise the perturbed input is the input: f(x) - f(x - 0) = 0 = map · 0, so the
/// infidelity is 0, normalised or not (beta = 0 / 1 by Captum's safe_div). In float32 it is
/// 0 up to rounding: f(x) inside a batch of perturbed copies can differ from the plain
/// forward by an ulp where oneDNN picks another convolution for another batch size (seen:
/// 5.6e-17, one ulp of the score squared), so the bound is 1e-12, the square of 1e-6 of the
/// scores' scale (about 1); any real error is orders of magnitude above it.
#[test]
fn infidelity_without_noise_is_zero() {
    let c = case("infidelity_saliency_b2");
    for normalize in [false, true] {
        let mut p = with(
            &c["params"],
            "perturbation",
            json!({"kind": "gaussian", "stdevs": 0.0}),
        );
        p["normalize"] = json!(normalize);
        let ours = case_scores(&c, "zero-noise", &p, 0);
        assert_eq!(
            ours.len(),
            2,
            "normalize {normalize}: one score per example"
        );
        assert!(
            ours.iter().all(|v| v.abs() <= 1e-12),
            "normalize {normalize}: {ours:?}"
        );
    }
}

/// A square as large as the input removes all of it: I = 1 (x != 0), x - I = 0, so the
/// infidelity of Integrated Gradients from the zero baseline is its convergence delta
/// squared, (sum(map) - (f(x) - f(0)))² (IG's completeness).
#[test]
fn full_square_infidelity_of_ig_is_its_delta_squared() {
    let c = case("infidelity_ig_square_full");
    let ours = case_scores(&c, "square-full", &c["params"], 0)[0];
    let out = scratch("metrics-captum-ig-delta").join("ig.npy");
    let mut cmd = explain_cmd(
        "classifier2d.pt",
        "classifier2d_x.npy",
        "captum.integrated_gradients",
    );
    cmd.args(["--params", r#"{"n_steps": 10}"#, "--target", "1", "--out"])
        .arg(&out);
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    let extras: Value = serde_json::from_str(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("extras: "))
            .expect("extras printed"),
    )
    .unwrap();
    let delta = floats(&extras["convergence_delta"])[0];
    // Both are float32 sums of scores about 0.1: they agree to about 1e-6 before squaring.
    assert!(
        (ours.sqrt() - delta.abs()).abs() <= 1e-6,
        "sqrt(infidelity) {} vs |delta| {}",
        ours.sqrt(),
        delta.abs()
    );
}

/// Without noise the map does not move: sensitivity 0. With a radius far below the distance
/// to the nearest ReLU or max-pool switch, Saliency (constant on each linear region of this
/// ReLU network) barely moves either.
#[test]
fn sensitivity_without_noise_is_zero_and_small_in_a_linear_region() {
    let c = case("sensitivity_saliency_b2");
    let ours = case_scores(
        &c,
        "zero-radius",
        &with(&c["params"], "perturb_radius", json!(0.0)),
        0,
    );
    assert_eq!(ours, vec![0.0, 0.0]);
    let tiny = case_scores(
        &c,
        "tiny-radius",
        &with(&c["params"], "perturb_radius", json!(1e-6)),
        0,
    );
    assert!(
        tiny.iter().all(|s| *s <= 1e-4),
        "sensitivity {tiny:?} at radius 1e-6"
    );
}

fn error_of(method: &str, params: Value) -> String {
    let out = scratch("metrics-captum-errors").join("never.npy");
    let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", method);
    cmd.args(["--params", &params.to_string(), "--target", "1", "--out"])
        .arg(&out);
    let stderr = fails(&mut cmd);
    assert!(!out.exists(), "no output on failure");
    stderr
}

#[test]
fn bad_parameters_are_refused_with_a_reason() {
    let saliency = json!({"method": "captum.saliency"});
    for metric in ["captum.infidelity", "captum.sensitivity_max"] {
        let err = error_of(metric, json!({"explained": {"method": "captum.salency"}}));
        assert!(
            err.contains("unknown method `captum.salency`") && err.contains("`captum.saliency`"),
            "{metric}: {err}"
        );
        let err = error_of(
            metric,
            json!({"explained": saliency, "n_perturb_samples": 0}),
        );
        assert!(
            err.contains("n_perturb_samples") && err.contains("minimum of 1"),
            "{metric}: {err}"
        );
        let err = error_of(
            metric,
            json!({"explained": saliency, "n_perturb_sample": 5}),
        );
        assert!(
            err.contains("Did you mean `n_perturb_samples`?"),
            "{metric}: {err}"
        );
        let err = error_of(metric, json!({}));
        assert!(err.contains("explained"), "{metric}: {err}");
        // A metric's map is one score per example, not a map over the input.
        let inner = json!({"method": metric, "params": {"explained": saliency}});
        let err = error_of(metric, json!({"explained": inner}));
        assert!(
            err.contains("needs a map over the input"),
            "{metric}: {err}"
        );
    }
    let infidelity = |perturbation: Value| {
        error_of(
            "captum.infidelity",
            json!({"explained": saliency, "perturbation": perturbation}),
        )
    };
    let err = infidelity(json!({"kind": "gaussian", "stdev": 0.1}));
    assert!(err.contains("Did you mean `stdevs`?"), "{err}");
    let err = infidelity(json!({"kind": "uniform"}));
    assert!(
        err.contains("perturbation.kind") && err.contains("square_removal"),
        "{err}"
    );
    let err = infidelity(json!({"kind": "gaussian", "stdevs": -1.0}));
    assert!(err.contains("perturbation.stdevs"), "{err}");
    let err = infidelity(json!({"kind": "square_removal"}));
    assert!(err.contains("needs its size"), "{err}");
    let err = infidelity(json!({"kind": "square_removal", "size": 9}));
    assert!(
        err.contains("between 1 and the smallest spatial side (8)"),
        "{err}"
    );
    let err = infidelity(json!({"size": 3}));
    assert!(
        err.contains("belong to the square_removal perturbation"),
        "{err}"
    );
    let sensitivity = |extra: Value| {
        let mut p = json!({"explained": saliency});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        error_of("captum.sensitivity_max", p)
    };
    let err = sensitivity(json!({"norm_ord": "nuc"}));
    assert!(err.contains("params.norm_ord"), "{err}");
    let err = sensitivity(json!({"perturb_radius": -0.1}));
    assert!(
        err.contains("perturb_radius") && err.contains("minimum"),
        "{err}"
    );
}
