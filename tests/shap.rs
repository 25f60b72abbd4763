//! The shap plugin against shap 0.51's own outputs (tests/fixtures/shap, made by
//! tools/make_shap_fixtures.py on small 2D and 3D ReLU CNNs with max pooling): the gradient
//! explainer with shap's `rseed` (the same random draws, so the same map), and its convergence
//! to a high-sample reference; the deep explainer (shap's DeepLIFT rules, not Captum's); the
//! partition explainer with blur and constant Image maskers; 3D partition maps by Owen values'
//! efficiency; and the errors for bad inputs.

#[macro_use]
mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};
use tch::{Kind, Tensor};

fn cases() -> Vec<Value> {
    fixture_cases("shap/manifest.json", "")
}

fn case(name: &str) -> Value {
    fixture_case(cases(), name)
}

/// `esegeta explain` of a case with `params` (the case's own when `None`); the map.
fn explain(c: &Value, params: Option<&Value>, out: &Path, extra: &[&str]) -> (Tensor, String) {
    let params = params.unwrap_or(&c["params"]);
    let mut cmd = explain_cmd(
        c["model"].as_str().unwrap(),
        c["input"].as_str().unwrap(),
        c["method"].as_str().unwrap(),
    );
    cmd.args(["--params", &params.to_string()])
        .args(["--target", &c["target"].to_string()])
        .args(extra)
        .arg("--out")
        .arg(out);
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{}: {stderr}", c["name"]);
    (load(out), stdout)
}

fn reference(c: &Value) -> Tensor {
    load(&fixture(&format!("shap/{}", c["map"].as_str().unwrap())))
}

/// Ours against shap's map, to `rel * max|shap|`.
fn check_to(name: &str, rel: f64) {
    let c = case(name);
    let out = scratch(&format!("shap-{name}")).join("map.npy");
    let (ours, _) = explain(&c, None, &out, &[]);
    let shap = reference(&c);
    assert_eq!(ours.size(), shap.size(), "{name}: shapes");
    let (diff, scale) = max_diff(&ours, &shap);
    assert!(scale > 0.0, "{name}: an all-zero reference tests nothing");
    assert!(
        diff <= rel * scale,
        "{name}: max|ours - shap| = {diff:e} > {rel:e} * max|shap| = {:e}",
        rel * scale
    );
}

/// Gradient explainer with shap's `rseed`: the same draws, so the same map but for float32
/// rounding (the ONNX graph on libtorch against PyTorch): `1e-4 * max|shap|`.
#[test]
fn gradient_explainer_with_shaps_seed_is_shaps_map() {
    for name in [
        "cnn2d_gradient_200",
        "cnn2d_gradient_2000",
        "cnn2d_gradient_torchscript",
        "cnn2d_gradient_bg1",
        "cnn3d_gradient_200",
        "cnn3d_gradient_2000",
        "cnn3d_gradient_torchscript",
    ] {
        check_to(name, 1e-4);
    }
}

/// The batch size is memory, not maths: 7 samples per pass give the default's map to
/// `1e-5 * max|map|` (summation order only).
#[test]
fn gradient_explainer_does_not_depend_on_the_batch_size() {
    let c = case("cnn3d_gradient_200");
    let dir = scratch("shap-gradient-batch");
    let (whole, _) = explain(&c, None, &dir.join("a.npy"), &[]);
    let mut p = c["params"].clone();
    p["batch_size"] = json!(7);
    let (chunked, _) = explain(&c, Some(&p), &dir.join("b.npy"), &[]);
    let (diff, scale) = max_diff(&chunked, &whole);
    assert!(diff <= 1e-5 * scale, "{diff:e} vs max {scale:e}");
}

fn correlation(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double).flatten(0, -1);
    let b = b.to_kind(Kind::Double).flatten(0, -1);
    let a = &a - a.mean(Kind::Double);
    let b = &b - b.mean(Kind::Double);
    let num = (&a * &b).sum(Kind::Double).double_value(&[]);
    let den = (a.square().sum(Kind::Double).double_value(&[])
        * b.square().sum(Kind::Double).double_value(&[]))
    .sqrt();
    num / den
}

/// With draws of its own (the run's seed, not shap's), the estimator is shap's: against shap's
/// 20000-sample map, ours correlates at >= 0.95 at 2000 samples, and from 200 to 2000 samples
/// the correlation rises and the largest error falls.
#[test]
fn gradient_explainer_converges_to_shaps_high_sample_map() {
    let reference = reference(&case("cnn2d_gradient_ref20000"));
    let c = case("cnn2d_gradient_200");
    let dir = scratch("shap-gradient-convergence");
    let mut stats = Vec::new();
    for nsamples in [200, 2000] {
        let p = json!({"background": c["params"]["background"], "nsamples": nsamples});
        let out = dir.join(format!("{nsamples}.npy"));
        let (ours, _) = explain(&c, Some(&p), &out, &["--seed", "1234"]);
        let (err, _) = max_diff(&ours, &reference);
        stats.push((correlation(&ours, &reference), err));
    }
    let ((r200, e200), (r2000, e2000)) = (stats[0], stats[1]);
    assert!(r2000 >= 0.95, "correlation at 2000 samples {r2000}");
    assert!(r2000 > r200, "correlation did not rise: {r200} -> {r2000}");
    assert!(e2000 < e200, "error did not fall: {e200:e} -> {e2000:e}");
}

/// Deep explainer: shap's rules on the ONNX graph, to `1e-3 * max|shap|`; on the skip
/// connection's model a rule replacing the whole gradient at its input rather than its own
/// share (as Captum's do) is off by far more.
#[test]
fn deep_explainer_is_shaps() {
    for name in [
        "cnn2d_deep",
        "cnn2d_deep_t3",
        "cnn2d_softmax_deep",
        "skipcnn2d_deep",
        "cnn3d_deep",
    ] {
        check_to(name, 1e-3);
    }
}

/// Captum's DeepLiftShap takes other rules (the max-pool's gradient fallback, the rescale's
/// output gradient before a max-pool's rule): on this model its map is not shap's, which is why
/// the deep explainer has rules of its own.
#[test]
fn captums_deeplift_shap_differs_from_shaps_deep_explainer() {
    let c = case("cnn2d_deep");
    let p = json!({"baselines": c["params"]["background"]});
    let mut captum = c.clone();
    captum["method"] = json!("captum.deeplift_shap");
    let out = scratch("shap-captum-deeplift-shap").join("map.npy");
    let (theirs, _) = explain(&captum, Some(&p), &out, &[]);
    let (diff, scale) = max_diff(&theirs, &reference(&c));
    assert!(diff > 1e-2 * scale, "Captum's map equals shap's: {diff:e}");
}

#[test]
fn deep_explainer_needs_a_graph_model() {
    let c = case("cnn2d_deep");
    let out = scratch("shap-deep-torchscript").join("map.npy");
    let mut cmd = explain_cmd("shap/cnn2d.pt", "shap/cnn2d_x.npy", "shap.deep_explainer");
    cmd.args(["--params", &c["params"].to_string(), "--out"])
        .arg(&out);
    let e = fails(&mut cmd);
    assert!(e.contains("ONNX"), "{e}");
}

/// Partition explainer, 2D, blur and constant maskers: shap's queue and tree exactly, to
/// `1e-3 * max|shap|`; the 15x13 image has odd widths, which shap halves unevenly (the tree
/// built with the other half first is off by 80-120% of the map's scale there).
#[test]
fn partition_explainer_is_shaps() {
    for name in [
        "cnn2d_partition_blur4",
        "cnn2d_partition_blur35",
        "cnn2d_partition_const05",
        "cnn2d_partition_const0_2000",
        "gapcnn2d_partition_blur35",
        "gapcnn2d_partition_const02",
    ] {
        check_to(name, 1e-3);
    }
}

/// The target score of the 3D fixture model on `x`.
fn score3d(x: &Tensor, target: i64) -> f64 {
    let model = tch::CModule::load(fixture("shap/cnn3d.pt")).unwrap();
    let out = tch::no_grad(|| model.forward_ts(&[x]).unwrap());
    out.double_value(&[0, target])
}

/// 3D (shap has no volume masker): Owen values are efficient, whatever the evaluation budget:
/// the map sums to `f(x) - f(hidden)`, to `1e-4 * |f(x) - f(hidden)|`, for a constant and for a
/// 3x3x3 box blur (computed here with reflect-101 padding and an average pool).
#[test]
fn partition_explainer_on_volumes_is_efficient() {
    let x = load(&fixture("shap/cnn3d_x.npy"));
    let target = 2;
    let blurred = x.reflection_pad3d([1, 1, 1, 1, 1, 1]).avg_pool3d(
        [3, 3, 3],
        [1, 1, 1],
        [0, 0, 0],
        false,
        true,
        None::<i64>,
    );
    let dir = scratch("shap-partition-3d");
    for (masker, hidden, max_evals) in [
        (json!(0.25), x.full_like(0.25), 300),
        (json!("blur(3,3,3)"), blurred, 500),
    ] {
        let c = json!({"name": "3d", "model": "shap/cnn3d.onnx", "input": "shap/cnn3d_x.npy",
                       "method": "shap.partition_explainer", "target": target,
                       "params": {"masker": masker, "max_evals": max_evals}});
        let (map, _) = explain(&c, None, &dir.join("map.npy"), &[]);
        assert_eq!(map.size(), x.size());
        let total = map.sum(Kind::Double).double_value(&[]);
        let want = score3d(&x, target) - score3d(&hidden, target);
        assert!(want.abs() > 1e-4, "the masker changes nothing: {want}");
        assert!(
            (total - want).abs() <= 1e-4 * want.abs(),
            "{masker}: sum {total} vs f(x) - f(hidden) = {want}"
        );
    }
}

/// Bad inputs are refused by name, before the model runs.
#[test]
fn bad_inputs_are_refused_by_name() {
    let dir = scratch("shap-errors");
    let empty = dir.join("empty.npy");
    Tensor::zeros([0, 3, 16, 16], (Kind::Float, tch::Device::Cpu))
        .write_npy(&empty)
        .unwrap();
    let empty = empty.to_str().unwrap();
    let out = dir.join("map.npy");
    let attempts: Vec<(&str, &str, Value, &str)> = vec![
        (
            "shap.gradient_explainer",
            "shap/cnn2d_x.npy",
            json!({"background": "shap/cnn3d_bg.npy"}),
            "background: shap/cnn3d_bg.npy has shape [6, 1, 8, 8, 8]",
        ),
        (
            "shap.deep_explainer",
            "shap/cnn2d_x.npy",
            json!({"background": "shap/cnn3d_bg.npy"}),
            "background: shap/cnn3d_bg.npy has shape",
        ),
        (
            "shap.gradient_explainer",
            "shap/cnn2d_x.npy",
            json!({"background": empty}),
            "holds no examples",
        ),
        (
            "shap.partition_explainer",
            "shap/cnn2d_x1.npy",
            json!({"masker": "gaussian(3)"}),
            "masker: unknown masker \"gaussian(3)\"",
        ),
        (
            "shap.partition_explainer",
            "shap/cnn2d_x1.npy",
            json!({"masker": "inpaint_telea"}),
            "does not implement",
        ),
        (
            "shap.partition_explainer",
            "shap/cnn2d_x1.npy",
            json!({"masker": "blur(3,3,3)"}),
            "must give 2 positive kernel sizes",
        ),
    ];
    for (method, input, params, wanted) in attempts {
        let mut cmd = explain_cmd("shap/cnn2d.onnx", input, method);
        cmd.args(["--params", &params.to_string(), "--out"])
            .arg(&out);
        let e = fails(&mut cmd);
        assert!(e.contains(wanted), "{method} {params}: {e}");
    }
}

/// Every fixture case is asserted on by some test above.
#[test]
fn every_fixture_case_is_used() {
    let source = include_str!("shap.rs");
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} is not tested"
        );
    }
}
