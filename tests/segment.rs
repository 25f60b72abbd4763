//! The segmentation service against scikit-image 0.26 (tools/make_segment_fixtures.py): `esegeta
//! segment` gives scikit-image's SLIC and Felzenszwalb labels up to renumbering on at least
//! 99.5% of pixels with the same number of segments, and its quickshift labels on at least 95%
//! (the bar; esegeta draws quickshift's tie-breaking noise as NumPy does, so they
//! agree on every pixel of these fixtures, the tie-heavy one included). A `{"segmentation":
//! ...}` feature_mask gives the same map as the labels file passed as the mask, and bad
//! parameters are refused by name.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::{json, Value};

/// The share of pixels on which `a` and `b` agree once `b`'s labels are renamed to `a`'s by a
/// one-to-one matching of largest overlaps (greedy on the contingency table, which never
/// overstates the agreement of the optimal matching).
fn agreement(a: &[i64], b: &[i64]) -> f64 {
    let mut table: HashMap<(i64, i64), usize> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1;
    }
    let mut pairs: Vec<((i64, i64), usize)> = table.into_iter().collect();
    pairs.sort_by(|p, q| q.1.cmp(&p.1).then(p.0.cmp(&q.0)));
    let (mut used_a, mut used_b) = (Vec::new(), Vec::new());
    let mut agree = 0;
    for ((x, y), n) in pairs {
        if !used_a.contains(&x) && !used_b.contains(&y) {
            used_a.push(x);
            used_b.push(y);
            agree += n;
        }
    }
    agree as f64 / a.len() as f64
}

fn labels(path: &std::path::Path) -> Vec<i64> {
    let t = load(path);
    Vec::<f32>::try_from(t.flatten(0, -1))
        .unwrap()
        .into_iter()
        .map(|v| v as i64)
        .collect()
}

fn distinct(v: &[i64]) -> usize {
    let mut d = v.to_vec();
    d.sort_unstable();
    d.dedup();
    d.len()
}

fn segment_cmd(
    input: &str,
    algorithm: &str,
    params: &Value,
    out: &std::path::Path,
) -> std::process::Command {
    let mut cmd = esegeta();
    cmd.args([
        "segment",
        "--input",
        input,
        "--algorithm",
        algorithm,
        "--params",
    ])
    .arg(params.to_string())
    .arg("--out")
    .arg(out);
    cmd
}

#[test]
fn slic_felzenszwalb_and_quickshift_agree_with_scikit_image() {
    let dir = scratch("segment-oracle");
    let cases = fixture_cases("segment/cases.json", "");
    assert!(cases.len() >= 12);
    let mut report = Vec::new();
    for case in &cases {
        let name = case["case"].as_str().unwrap();
        let algorithm = case["algorithm"].as_str().unwrap();
        let mut params = case["params"].clone();
        if let Some(mask) = params.get("mask").and_then(Value::as_str) {
            params["mask"] = json!(format!("segment/{mask}"));
        }
        let out = dir.join(format!("{name}.npy"));
        let input = format!("segment/{}", case["input"].as_str().unwrap());
        let (ok, _, stderr) = run(&mut segment_cmd(&input, algorithm, &params, &out));
        assert!(ok, "{name}: {stderr}");
        let ours = labels(&out);
        let theirs = labels(&fixture(&format!(
            "segment/{}",
            case["labels"].as_str().unwrap()
        )));
        assert_eq!(ours.len(), theirs.len(), "{name}: grid");
        let share = agreement(&ours, &theirs);
        report.push(format!(
            "{name}: {share:.4} ({} and {} segments)",
            distinct(&ours),
            distinct(&theirs)
        ));
        let bar = match algorithm {
            "quickshift" => 0.95,
            _ => {
                assert_eq!(distinct(&ours), distinct(&theirs), "{name}: segment count");
                0.995
            }
        };
        assert!(
            share >= bar,
            "{name}: {share:.4} of pixels agree, below {bar}"
        );
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn the_labels_keep_the_grid_and_a_volume_keeps_its_affine() {
    let dir = scratch("segment-formats");
    let png = dir.join("labels.png");
    let (ok, stdout, stderr) = run(&mut segment_cmd(
        "segment/colour.npy",
        "slic",
        &json!({"n_segments": 20}),
        &png,
    ));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("segment(s) on the grid [64, 64]"),
        "{stdout}"
    );
    let npy = dir.join("labels.npy");
    assert!(
        run(&mut segment_cmd(
            "segment/colour.npy",
            "slic",
            &json!({"n_segments": 20}),
            &npy
        ))
        .0
    );
    let t = tch::Tensor::read_npy(&npy).unwrap();
    assert_eq!((t.kind(), t.size()), (tch::Kind::Int64, vec![1, 64, 64]));
    let nii = dir.join("labels.nii.gz");
    let (ok, _, stderr) = run(&mut segment_cmd(
        "vol.nii.gz",
        "slic",
        &json!({"n_segments": 4}),
        &nii,
    ));
    assert!(ok, "{stderr}");
    let read = esegeta::io::load_input(&nii).unwrap();
    assert_eq!(read.tensor.size(), vec![1, 1, 8, 6, 4]);
    let source = esegeta::io::load_input(&fixture("vol.nii.gz")).unwrap();
    let (a, b) = (read.nifti.unwrap(), source.nifti.unwrap());
    assert_eq!(
        (a.srow_x, a.srow_y, a.srow_z),
        (b.srow_x, b.srow_y, b.srow_z)
    );
}

#[test]
fn a_segmentation_feature_mask_equals_its_labels_file() {
    let dir = scratch("segment-feature-mask");
    let spec = json!({"n_segments": 6, "compactness": 5});
    let labels_file = dir.join("labels.npy");
    let (ok, _, stderr) = run(&mut segment_cmd(
        "classifier2d_x.npy",
        "slic",
        &spec,
        &labels_file,
    ));
    assert!(ok, "{stderr}");
    let mut segmentation = spec.clone();
    segmentation["algorithm"] = json!("slic");
    for (method, extra) in [
        ("captum.feature_ablation", json!({})),
        ("captum.shapley_values", json!({})),
        ("captum.shapley_value_sampling", json!({"n_samples": 3})),
        ("captum.kernel_shap", json!({"n_samples": 30})),
        ("captum.lime", json!({"n_samples": 30, "alpha": 0.0})),
    ] {
        let mut maps = Vec::new();
        for (i, mask) in [
            json!({"segmentation": segmentation}),
            json!(labels_file.to_str().unwrap()),
        ]
        .into_iter()
        .enumerate()
        {
            let mut params = extra.clone();
            params["feature_mask"] = mask;
            let out = dir.join(format!("{}_{i}.npy", method.replace('.', "_")));
            let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", method);
            cmd.args(["--target", "1", "--seed", "3", "--params"])
                .arg(params.to_string())
                .arg("--out")
                .arg(&out);
            let (ok, _, stderr) = run(&mut cmd);
            assert!(ok, "{method}: {stderr}");
            maps.push(load(&out));
        }
        let (diff, scale) = max_diff(&maps[0], &maps[1]);
        assert!(scale > 0.0, "{method}: an all-zero map");
        assert_eq!(diff, 0.0, "{method}: the two masks give different maps");
    }
}

#[test]
fn bad_segmentations_are_refused_by_name() {
    let dir = scratch("segment-errors");
    let out = dir.join("never.npy");
    for (input, algorithm, params, expected) in [
        (
            "segment/colour.npy",
            "slic",
            json!({"n_segmnets": 5}),
            "unknown field `n_segmnets`",
        ),
        (
            "segment/colour.npy",
            "slic",
            json!({"n_segments": "many"}),
            "slic segmentation's parameters",
        ),
        (
            "segment/colour.npy",
            "slic",
            json!({"n_segments": 0}),
            "`n_segments` must be at least 1",
        ),
        (
            "segment/colour.npy",
            "slic",
            json!({"start_label": 2}),
            "`start_label` must be 0 or 1",
        ),
        (
            "segment/colour.npy",
            "watershed",
            json!({}),
            "unknown segmentation algorithm `watershed`",
        ),
        (
            "segment/volume.npy",
            "felzenszwalb",
            json!({}),
            "felzenszwalb works on 2D images only",
        ),
        (
            "segment/volume.npy",
            "quickshift",
            json!({}),
            "quickshift works on 2D images only",
        ),
        (
            "segment/grey.npy",
            "quickshift",
            json!({"convert2lab": true}),
            "`convert2lab` needs an RGB input",
        ),
        (
            "segment/colour.npy",
            "slic",
            json!({"spacing": [1, 1, 1]}),
            "`spacing` has 3 values",
        ),
        (
            "segment/colour.npy",
            "slic",
            json!({"mask": "segment/volume.npy"}),
            "not the input's spatial grid",
        ),
    ] {
        let stderr = fails(&mut segment_cmd(input, algorithm, &params, &out));
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
    let empty = dir.join("empty.npy");
    tch::Tensor::zeros([64, 64], (tch::Kind::Float, tch::Device::Cpu))
        .write_npy(&empty)
        .unwrap();
    let stderr = fails(&mut segment_cmd(
        "segment/colour.npy",
        "slic",
        &json!({"mask": empty.to_str().unwrap()}),
        &out,
    ));
    assert!(stderr.contains("selects nothing"), "{stderr}");
    // Through a method: refused before the model runs, naming the parameter.
    let mut cmd = explain_cmd(
        "classifier2d.pt",
        "classifier2d_x.npy",
        "captum.feature_ablation",
    );
    cmd.args(["--params"])
        .arg(
            json!({"feature_mask": {"segmentation": {"algorithm": "slic", "n_segments": -3}}})
                .to_string(),
        )
        .arg("--out")
        .arg(&out);
    let stderr = fails(&mut cmd);
    assert!(
        stderr.contains("feature_mask") && stderr.contains("`n_segments` must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn feature_permutation_segments_each_example_of_a_batch() {
    let dir = scratch("segment-permutation");
    let batch = load(&fixture("classifier2d_x2.npy"));
    assert_eq!(batch.size()[0], 2);
    let spec = json!({"n_segments": 5, "compactness": 5});
    let mut per_example = Vec::new();
    for b in 0..2 {
        let example = dir.join(format!("x{b}.npy"));
        batch.narrow(0, b, 1).write_npy(&example).unwrap();
        let out = dir.join(format!("labels{b}.npy"));
        let (ok, _, stderr) = run(&mut segment_cmd(
            example.to_str().unwrap(),
            "slic",
            &spec,
            &out,
        ));
        assert!(ok, "{stderr}");
        per_example.push(tch::Tensor::read_npy(&out).unwrap());
    }
    // [2, 1, H, W]: each example's labels, shared by its channels.
    let labels_file = dir.join("labels.npy");
    tch::Tensor::stack(&per_example, 0)
        .squeeze_dim(1)
        .unsqueeze(1)
        .write_npy(&labels_file)
        .unwrap();
    let mut segmentation = spec.clone();
    segmentation["algorithm"] = json!("slic");
    let mut maps = Vec::new();
    for (i, mask) in [
        json!({"segmentation": segmentation}),
        json!(labels_file.to_str().unwrap()),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.join(format!("map{i}.npy"));
        let mut cmd = explain_cmd(
            "classifier2d.pt",
            "classifier2d_x2.npy",
            "captum.feature_permutation",
        );
        cmd.args(["--target", "1", "--seed", "5", "--params"])
            .arg(json!({"feature_mask": mask}).to_string())
            .arg("--out")
            .arg(&out);
        let (ok, _, stderr) = run(&mut cmd);
        assert!(ok, "{stderr}");
        maps.push(load(&out));
    }
    let (diff, scale) = max_diff(&maps[0], &maps[1]);
    assert!(scale > 0.0 && diff == 0.0, "diff {diff}, scale {scale}");
}
