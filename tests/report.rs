//! `report.html`: built at the end of a run with failed and timed-out jobs in it, rebuilt by
//! `esegeta report`, one file with no external references, with every section and the metric
//! tables also written as CSV.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

fn testkit_dir() -> PathBuf {
    let dir = scratch("report-testkit");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_esegeta"));
    std::fs::copy(
        bin.with_file_name("libfixture_testkit.so"),
        dir.join("libfixture_testkit.so"),
    )
    .unwrap();
    dir
}

/// Runs the config; returns its exit code (a panicking method prints its panic, so the
/// common `run` helper, which refuses any "panicked", does not apply).
fn run_config(dir: &Path, config: serde_json::Value) -> Option<i32> {
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let out = esegeta()
        .arg("--plugins")
        .arg(testkit_dir())
        .arg("run")
        .arg(&path)
        .output()
        .unwrap();
    out.status.code()
}

#[test]
fn the_report_shows_maps_metrics_failures_and_timeouts_in_one_offline_file() {
    let dir = scratch("report-run");
    let mass = json!({"explained": {"method": "captum.saliency"}, "mask": fixture("roi.npy")});
    let config = json!({
        "models": [
            {"path": fixture("segmenter3d.pt"), "name": "argmax", "task": "segmentation"},
            {"path": fixture("segmenter3d_fg.pt"), "name": "threshold", "task": "segmentation", "wrapper": "threshold"}
        ],
        "inputs": [{"path": fixture("seg3d_x.npy"), "targets": [1]}],
        "methods": [
            {"id": "captum.saliency"},
            {"id": "testkit.panic"},
            {"id": "testkit.sleep", "params": {"seconds": 30}, "timeout_s": 0.5},
            {"id": "metrics.relevance_mass_accuracy", "name": "mass", "params": mass}
        ],
        "randomisation": {"methods": ["captum.saliency"], "models": ["argmax"]},
        "output": {"folder": "out", "formats": ["npy"]}
    });
    assert_eq!(
        run_config(&dir, config),
        Some(4),
        "failed jobs make the run fail"
    );
    let out = dir.join("out");
    let page = std::fs::read_to_string(out.join("report.html")).expect("the run wrote its report");
    check_page(&page);

    // Rebuilt from the manifest and maps alone, the same page.
    std::fs::remove_file(out.join("report.html")).unwrap();
    let (ok, stdout, stderr) = run(esegeta().arg("report").arg(&out));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("report.html"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(out.join("report.html")).unwrap(),
        page
    );

    // The metric's table: rows the scored methods, columns the models.
    let csv =
        std::fs::read_to_string(out.join("tables/metrics.relevance_mass_accuracy.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "method,argmax,threshold", "{csv}");
    assert!(lines[1].starts_with("captum.saliency,"), "{csv}");
    for cell in lines[1].split(',').skip(1) {
        let v: f64 = cell.parse().unwrap_or_else(|_| panic!("{csv}"));
        assert!((0.0..=1.0).contains(&v), "a mass fraction: {csv}");
    }
}

fn check_page(page: &str) {
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    for external in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "url(http",
        "@import",
    ] {
        assert!(
            !page.contains(external),
            "the page refers to something outside it: {external}"
        );
    }
    for section in [
        "id=\"maps\"",
        "id=\"metrics\"",
        "id=\"randomisation\"",
        "id=\"jobs\"",
        "<th class=\"sort\">",
        "<script>",
    ] {
        assert!(page.contains(section), "missing {section}");
    }
    // A grid of methods x models: both columns, the saliency maps as inline PNGs.
    assert!(page.contains("<th>argmax</th><th>threshold</th>"));
    assert!(page.matches("src=\"data:image/png;base64,").count() >= 2);
    // The failures, with their messages.
    assert!(
        page.contains("failed: ") && page.contains("panicked"),
        "the panic's message"
    );
    assert!(
        page.contains("timed out: timed out after"),
        "the timeout's message"
    );
    assert!(page.contains("9 job(s): 5 done, 2 failed, 2 timed out"));
    // The cascade: a strip from the original through the three layers, and its curves.
    assert!(page.contains("argmax · captum.saliency (target 1)"));
    for stage in ["alt=\"original\"", "alt=\"1: +head\"", "alt=\"3: +enc\""] {
        assert!(page.contains(stage), "missing {stage}");
    }
    assert!(page.contains("<svg") && page.contains("<polyline"));
}

/// What the report shows of each job beyond its figure: warnings (beside the figure and in the
/// jobs table), extras such as IG's convergence delta, links to its files relative to the page,
/// figures that open full size, and for 3D maps the slices through the map's maximum.
#[test]
fn the_report_shows_warnings_extras_file_links_and_slices_through_the_maximum() {
    let dir = scratch("report-details");
    let config = json!({
        "models": [{"path": fixture("classifier2d.pt"), "name": "c2d"}],
        "inputs": [{"path": fixture("classifier2d_x2.npy"), "targets": [1]}],
        "methods": [
            {"id": "captum.integrated_gradients", "name": "ig", "params": {"n_steps": 4}}
        ],
        "output": {"folder": "out", "formats": ["npy", "nii.gz", "png"]}
    });
    assert_eq!(run_config(&dir, config), Some(0));
    let out = dir.join("out");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    // The skipped NIfTI's warning: under the figure, in the jobs table, counted on top.
    assert_eq!(page.matches("<li>no nii.gz written").count(), 2, "{page}");
    assert!(page.contains("1 job(s) with warnings"));
    // IG's convergence delta per example, listed.
    let delta = page
        .find("<code>convergence_delta</code>: [")
        .expect("the delta");
    assert_eq!(
        page[delta..]
            .split(']')
            .next()
            .unwrap()
            .matches(", ")
            .count(),
        1
    );
    // Links to the npy and both PNGs, relative to the page, that resolve.
    let hrefs: Vec<&str> = page
        .split("<a href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .filter(|h| !h.starts_with('#'))
        .collect();
    for name in ["ig_target1.npy", "ig_target1_b0.png", "ig_target1_b1.png"] {
        let href = hrefs.iter().find(|h| h.ends_with(name)).expect(name);
        assert!(!href.starts_with('/') && !href.contains(':'), "{href}");
        assert!(out.join(href).is_file(), "{href}");
    }
    // Both examples drawn, zoomable, with the overlay that enlarges them.
    assert!(page.matches("<img class=\"zoom\"").count() >= 2);
    assert!(page.contains("example 1 of 2") && page.contains("id=\"lightbox\""));

    // A 3D map: the middle slices and those through its maximum, named in the caption.
    let dir = scratch("report-details-3d");
    let config = json!({
        "models": [{"path": fixture("segmenter3d.pt"), "task": "segmentation"}],
        "inputs": [{"path": fixture("seg3d_x.npy"), "targets": [1]}],
        "methods": [{"id": "captum.saliency"}],
        "output": {"folder": "out", "formats": ["npy"]}
    });
    assert_eq!(run_config(&dir, config), Some(0));
    let page = std::fs::read_to_string(dir.join("out/report.html")).unwrap();
    assert!(
        page.contains("middle slices i=4, j=4, k=4; slices through the largest |map| i="),
        "{page}"
    );
}

/// A map made of superpixels or supervoxels comes with them: `<map>_segments.npy` (and
/// `.nii.gz` on the scan's grid, keeping its affine) holds the labels `esegeta segment` gives
/// for the same segmentation, and the report draws their boundaries beside the map. A map of
/// pixels (saliency) has none.
#[test]
fn a_map_of_segments_comes_with_its_segment_map_in_files_and_report() {
    let dir = scratch("report-segments");
    let slic = json!({"algorithm": "slic", "n_segments": 4});
    let config = json!({
        "models": [{"path": fixture("segmenter3d.pt"), "task": "segmentation", "name": "s3d"}],
        "inputs": [{"path": fixture("vol.nii.gz"), "targets": [1]}],
        "methods": [
            {"id": "captum.feature_ablation", "name": "fa",
             "params": {"feature_mask": {"segmentation": slic}}},
            {"id": "lime.lime_image", "name": "lime",
             "params": {"num_samples": 20, "segmentation_fn": slic}},
            {"id": "captum.saliency", "name": "sal"}
        ],
        "output": {"folder": "out", "formats": ["npy", "nii.gz"]}
    });
    assert_eq!(run_config(&dir, config), Some(0));
    let labels = dir.join("labels.npy");
    let mut cmd = esegeta();
    cmd.args(["segment", "--input"])
        .arg(fixture("vol.nii.gz"))
        .args([
            "--algorithm",
            "slic",
            "--params",
            r#"{"n_segments": 4}"#,
            "--out",
        ])
        .arg(&labels);
    assert!(run(&mut cmd).0);
    let expected = tch::Tensor::read_npy(&labels).unwrap();
    let maps = dir.join("out/vol/s3d");
    for name in ["fa", "lime"] {
        let written = tch::Tensor::read_npy(maps.join(format!("{name}_target1_segments.npy")));
        assert!(written.unwrap().equal(&expected), "{name}: other labels");
        let nii = maps.join(format!("{name}_target1_segments.nii.gz"));
        let read = esegeta::io::load_input(&nii).unwrap();
        let source = esegeta::io::load_input(&fixture("vol.nii.gz")).unwrap();
        assert!(read
            .tensor
            .squeeze_dim(1)
            .equal(&expected.to_kind(tch::Kind::Float)));
        let (a, b) = (read.nifti.unwrap(), source.nifti.unwrap());
        assert_eq!((a.srow_x, a.srow_y), (b.srow_x, b.srow_y), "{name}: affine");
    }
    assert!(!maps.join("sal_target1_segments.npy").exists());
    let page = std::fs::read_to_string(dir.join("out/report.html")).unwrap();
    assert_eq!(
        page.matches("the boundaries of the 4 segments the map is made of")
            .count(),
        2,
        "{page}"
    );
}
