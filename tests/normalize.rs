//! Per-channel normalisation (`preprocessing.normalize: {"mean": [..], "std": [..]}` in a run,
//! `--mean`/`--std` for explain): a map of the normalised input, the counts checked against
//! the input's channels.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};
use tch::Tensor;

const MEAN: [f64; 3] = [0.1, 0.2, 0.3];
const STD: [f64; 3] = [0.5, 0.25, 2.0];

fn config(dir: &Path, normalize: Value) -> std::path::PathBuf {
    let config = json!({
        "model": {"path": fixture("classifier2d.pt")},
        "inputs": [{"path": fixture("classifier2d_x.npy"), "targets": [1]}],
        "preprocessing": {"normalize": normalize},
        "methods": [{"id": "captum.saliency", "params": {"abs": false}}],
        "output": {"folder": "out", "formats": ["npy"]}
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn results(config: &Path) -> Value {
    let text = std::fs::read_to_string(config.parent().unwrap().join("out/results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn explain(out: &Path, input: &Path, extra: &[&str]) -> Tensor {
    let mut cmd = explain_cmd(
        "classifier2d.pt",
        input.to_str().unwrap(),
        "captum.saliency",
    );
    cmd.args(["--params", r#"{"abs": false}"#, "--target", "1"])
        .args(extra)
        .arg("--out")
        .arg(out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    load(out)
}

#[test]
fn a_run_with_mean_and_std_explains_the_input_normalised_per_channel() {
    let dir = scratch("normalize-run");
    let config = config(&dir, json!({"mean": MEAN, "std": STD}));
    let (ok, _, stderr) = run(esegeta().arg("run").arg(&config));
    assert!(ok, "{stderr}");
    let m = results(&config);
    let map = load(Path::new(m["jobs"][0]["files"][0].as_str().unwrap()));
    // By hand: (x - mean[c]) / std[c], explained as is.
    let x = load(&fixture("classifier2d_x.npy"));
    let column = |v: &[f64]| {
        Tensor::from_slice(v)
            .to_kind(tch::Kind::Float)
            .view([1, 3, 1, 1])
    };
    let prepared = dir.join("prepared.npy");
    ((&x - column(&MEAN)) / column(&STD))
        .write_npy(&prepared)
        .unwrap();
    let by_hand = explain(&dir.join("by_hand.npy"), &prepared, &[]);
    let (diff, scale) = max_diff(&map, &by_hand);
    // The same arithmetic in float32: rounding only.
    assert!(diff <= 1e-6 * scale, "{diff} of {scale}");
    // explain's flags do the same.
    let (mean, std) = ("0.1,0.2,0.3", "0.5,0.25,2");
    let flagged = explain(
        &dir.join("flags.npy"),
        &fixture("classifier2d_x.npy"),
        &["--mean", mean, "--std", std],
    );
    let (diff, scale) = max_diff(&flagged, &by_hand);
    assert!(diff <= 1e-6 * scale, "{diff} of {scale}");
    // Without the normalisation the map differs: the test can fail.
    let raw = explain(&dir.join("raw.npy"), &fixture("classifier2d_x.npy"), &[]);
    assert!(max_diff(&raw, &by_hand).0 > 1e-3 * scale);
}

/// The run's dry run of the first input finds the mismatch before any job starts.
#[test]
fn a_count_that_misses_the_channels_fails_the_run_naming_key_and_file() {
    let dir = scratch("normalize-count");
    let config = config(&dir, json!({"mean": [0.5], "std": [0.2]}));
    let error = fails(esegeta().arg("run").arg(&config));
    for part in [
        "preprocessing.normalize.mean has 1 value(s)",
        "classifier2d_x.npy has 3 channel(s)",
    ] {
        assert!(error.contains(part), "{part} missing from {error}");
    }
    assert!(!dir.join("out/results.json").exists());
}

#[test]
fn a_std_that_is_not_positive_and_an_unknown_name_are_refused_by_config_path() {
    let dir = scratch("normalize-std");
    let config = config(&dir, json!({"mean": [0, 0, 0], "std": [1, 0, 1]}));
    let e = fails(esegeta().arg("check").arg(&config));
    assert!(
        e.contains("preprocessing.normalize.std[1]: 0 is less than or equal to"),
        "{e}"
    );
    let config = config_named(&dir, "zscor");
    let e = fails(esegeta().arg("check").arg(&config));
    assert!(e.contains("preprocessing.normalize"), "{e}");
    // The names still work.
    let config = config_named(&dir, "zscore");
    let (ok, _, stderr) = run(esegeta().arg("check").arg(&config));
    assert!(ok, "{stderr}");
}

fn config_named(dir: &Path, name: &str) -> std::path::PathBuf {
    config(dir, json!(name))
}
