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
