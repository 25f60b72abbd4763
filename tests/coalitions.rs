//! The methods built on coalitions of feature groups (exact Shapley values, KernelShap, Lime)
//! beyond their Captum cases in captum_reference.rs: properties that hold for any sample, and
//! the errors of bad parameters.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tch::{Device, Kind, Tensor};

const MODEL: &str = "classifier2d.pt";
const INPUT: &str = "classifier2d_x.npy";
const QUADRANTS: &str = "classifier2d_quadrants.npy";

fn explain(method: &str, params: &str, out: &Path) -> Tensor {
    let mut cmd = explain_cmd(MODEL, INPUT, method);
    cmd.args(["--target", "1", "--params", params, "--out"])
        .arg(out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{method} failed: {stderr}");
    load(out)
}

/// Per label of the quadrant mask, the value its elements share (asserting they share one).
fn per_feature(map: &Tensor) -> Vec<f64> {
    let mask = load(&fixture(QUADRANTS)).to_kind(Kind::Int64);
    (0..4)
        .map(|f| {
            let values = map.masked_select(&mask.eq(f));
            let (lo, hi) = (
                values.min().double_value(&[]),
                values.max().double_value(&[]),
            );
            assert_eq!(lo, hi, "feature {f} has more than one value");
            lo
        })
        .collect()
}

/// A mask that makes the whole input one feature.
fn one_feature(dir: &Path) -> PathBuf {
    let path = dir.join("one_feature.npy");
    Tensor::zeros([1, 3, 8, 8], (Kind::Int64, Device::Cpu))
        .write_npy(&path)
        .unwrap();
    path
}

/// f(x) - f(baseline) with `baselines` 0.3: feature ablation of one feature covering the
/// whole input gives every element that change.
fn score_change(dir: &Path) -> f64 {
    let params = format!(
        r#"{{"feature_mask": "{}", "baselines": 0.3}}"#,
        one_feature(dir).display()
    );
    explain("captum.feature_ablation", &params, &dir.join("fa.npy"))
        .max()
        .double_value(&[])
}

/// Shapley values add up to f(x) - f(baseline) (efficiency): exactly for
/// `captum.shapley_values`, and for KernelShap whatever coalitions were drawn, since the full
/// and the empty coalition weigh 1e6 against 1 for the others. Within 1e-4 of the change
/// (float32 scores, float64 sums and fits).
#[test]
fn shapley_values_add_up_to_the_score_change() {
    let dir = scratch("coalitions_efficiency");
    let change = score_change(&dir);
    for (method, extra) in [
        ("captum.shapley_values", ""),
        ("captum.kernel_shap", r#", "n_samples": 30"#),
    ] {
        let params = format!(r#"{{"feature_mask": "{QUADRANTS}", "baselines": 0.3{extra}}}"#);
        let phi = per_feature(&explain(method, &params, &dir.join("phi.npy")));
        let total: f64 = phi.iter().sum();
        assert!(
            (total - change).abs() <= 1e-4 * change.abs(),
            "{method}: attributions {phi:?} add up to {total}, the score change is {change}"
        );
    }
}

#[test]
fn lime_gives_each_feature_one_coefficient_and_repeats_under_a_seed() {
    let dir = scratch("coalitions_lime");
    let params = format!(r#"{{"feature_mask": "{QUADRANTS}", "n_samples": 40, "alpha": 1e-4}}"#);
    let first = per_feature(&explain("captum.lime", &params, &dir.join("a.npy")));
    let again = per_feature(&explain("captum.lime", &params, &dir.join("b.npy")));
    assert_eq!(first, again, "the same seed drew different samples");
    assert!(
        first.iter().any(|&c| c != 0.0),
        "every coefficient is 0: {first:?}"
    );
}

#[test]
fn bad_parameters_are_refused_with_their_names() {
    let dir = scratch("coalitions_errors");
    let one = format!(r#"{{"feature_mask": "{}"}}"#, one_feature(&dir).display());
    let cases = [
        ("captum.kernel_shap", one.as_str(), "at least 2 features"),
        ("captum.lime", r#"{"kernel_width": 0}"#, "kernel_width"),
        ("captum.lime", r#"{"alpha": -1}"#, "alpha"),
        (
            "captum.lime",
            r#"{"distance_mode": "manhattan"}"#,
            "distance_mode",
        ),
        ("captum.kernel_shap", r#"{"n_samples": 0}"#, "n_samples"),
        // No feature_mask: each of the 192 elements is a feature.
        ("captum.shapley_values", "{}", "192 features (at most 20)"),
    ];
    for (method, params, expected) in cases {
        let mut cmd = explain_cmd(MODEL, INPUT, method);
        cmd.args(["--target", "1", "--params", params, "--out"])
            .arg(dir.join("x.npy"));
        let stderr = fails(&mut cmd);
        assert!(
            stderr.contains(expected),
            "{method} {params}: expected an error naming `{expected}`, got: {stderr}"
        );
    }
}
