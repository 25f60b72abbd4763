//! Checking a map from `esegeta explain` against a Captum fixture case (the cases made by
//! tools/make_fixtures.py and tools/make_layer_fixtures.py).

use serde_json::Value;

use super::*;

/// Runs one Captum fixture case through `esegeta explain`, from `tests/fixtures/<dir>` where
/// its files are, and checks the map against Captum's: deterministic cases to
/// `1e-3 * max|captum| + 1e-6` (or the case's own `tolerance` times `max|captum|`), sampled
/// ones to 3x Captum's own spread across seeds.
pub fn check_captum_case(c: &Value, dir: &str) {
    let name = c["name"].as_str().unwrap();
    let dir = fixtures().join(dir);
    let out = scratch(&format!("captum-{name}")).join("map.npy");
    let mut cmd = esegeta();
    cmd.current_dir(&dir)
        .args([
            "explain",
            "--model",
            c["model"].as_str().unwrap(),
            "--input",
            c["input"].as_str().unwrap(),
        ])
        .args([
            "--method",
            c["method"].as_str().unwrap(),
            "--params",
            &c["params"].to_string(),
        ])
        .args(["--task", c["task"].as_str().unwrap()])
        .arg("--out")
        .arg(&out);
    // Captum's layer activation takes no target.
    if let Some(t) = c["target"].as_i64() {
        cmd.args(["--target", &t.to_string()]);
    }
    if let Some(w) = c["wrapper"].as_str() {
        cmd.args(["--wrapper", w]);
    }
    if let Some(layer) = c["layer"].as_str() {
        cmd.args(["--layer", layer]);
    }
    if let Some(m) = c["mask"].as_str() {
        cmd.args(["--mask", m]);
    }
    if c["fixed_mask"] == true {
        cmd.arg("--fixed-mask");
    }
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{name}: esegeta failed: {stderr}");
    let ours = load(&out);
    let captum = load(&dir.join(c["expected"].as_str().unwrap()));
    let (diff, scale) = max_diff(&ours, &captum);
    let tolerance = if let Some(relative) = c["tolerance"].as_f64() {
        relative * scale
    } else if c["check"] == "statistical" {
        3.0 * c["extras"]["captum_other_seeds_max_abs_dev"]
            .as_f64()
            .unwrap()
    } else {
        1e-3 * scale + 1e-6
    };
    assert!(
        diff <= tolerance,
        "{name}: max|ours - reference| = {diff:e} > {tolerance:e} (max|reference| = {scale:e})"
    );
    if let Some(expected) = c["extras"]["convergence_delta"].as_array() {
        check_delta(name, &stdout, expected, &captum);
    }
}
