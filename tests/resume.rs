//! Resume can never be stale: a finished job is skipped only while everything its map depends
//! on is unchanged (run/identity.rs). Each part is edited in turn here and the job must run
//! again, with the manifest saying why; an unchanged re-run redoes nothing.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

/// A run folder with its own copies of the model, input and captum plugin, so that the test
/// can change their content.
struct Case {
    dir: PathBuf,
    config: Value,
}

impl Case {
    fn new() -> Self {
        let dir = scratch("resume-identity");
        for file in [
            "segmenter3d.onnx",
            "segmenter3d.onnx.data",
            "segmenter3d_x1.npy",
        ] {
            std::fs::copy(fixture(&format!("onnx/{file}")), dir.join(file)).unwrap();
        }
        // The binary with only the captum plugin beside it, which the test rebuilds.
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let built = PathBuf::from(env!("CARGO_BIN_EXE_esegeta"));
        for file in ["esegeta", "libesegeta_captum.so"] {
            std::fs::copy(built.with_file_name(file), bin.join(file)).unwrap();
        }
        let config = json!({
            "model": {"path": "segmenter3d.onnx", "task": "segmentation"},
            "inputs": [{"path": "segmenter3d_x1.npy", "targets": [1]}],
            "methods": [
                {"id": "captum.integrated_gradients", "name": "ig", "params": {"n_steps": 4}},
                {"id": "captum.layer_activation", "name": "act", "layer": "enc"}
            ],
            "output": {"folder": "out", "formats": ["npy"]}
        });
        Case { dir, config }
    }

    /// Writes the config, runs it, and returns the manifest's records by method name.
    fn run(&self) -> Vec<(String, Value)> {
        let path = self.dir.join("config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&self.config).unwrap()).unwrap();
        let mut cmd = std::process::Command::new(self.dir.join("bin/esegeta"));
        cmd.arg("run").arg(&path);
        let (ok, _, stderr) = run(&mut cmd);
        assert!(ok, "{stderr}");
        let text = std::fs::read_to_string(self.dir.join("out/results.json")).unwrap();
        let manifest: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            manifest["config_as_run"], self.config,
            "the manifest records the config as run"
        );
        manifest["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["name"].as_str().unwrap().to_string(), j.clone()))
            .collect()
    }
}

/// The jobs that ran this time (by name), with why: a job resumed keeps its old duration and
/// has no `rerun_because`, one re-run has a fresh one naming what changed.
fn rerun(before: &[(String, Value)], after: &[(String, Value)]) -> Vec<(String, String)> {
    after
        .iter()
        .filter(|(name, j)| {
            let old = before.iter().find(|(n, o)| n == name && o["id"] == j["id"]);
            old.is_none_or(|(_, o)| o["duration_s"] != j["duration_s"])
        })
        .map(|(name, j)| {
            let why: Vec<&str> = j["rerun_because"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            (name.clone(), why.join("; "))
        })
        .collect()
}

fn flip_a_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = (at as usize).min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn every_part_of_a_jobs_identity_makes_it_run_again_and_nothing_else_does() {
    let mut case = Case::new();
    let mut last = case.run();
    assert_eq!(last.len(), 2);
    let mut step =
        |case: &mut Case, what: &str, edit: &dyn Fn(&mut Case), expect: &[(&str, &str)]| {
            edit(case);
            let now = case.run();
            let ran = rerun(&last, &now);
            let names: Vec<&str> = ran.iter().map(|(n, _)| n.as_str()).collect();
            let wanted: Vec<&str> = expect.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, wanted, "after editing {what}: {ran:?}");
            for ((_, why), (_, part)) in ran.iter().zip(expect) {
                assert!(
                    why.contains(part),
                    "after editing {what}, rerun_because was `{why}`"
                );
            }
            last = now;
        };
    step(&mut case, "nothing", &|_| {}, &[]);
    step(
        &mut case,
        "n_steps",
        &|c| c.config["methods"][0]["params"]["n_steps"] = json!(8),
        &[("ig", "params.n_steps: 4 -> 8")],
    );
    step(
        &mut case,
        "the layer",
        &|c| c.config["methods"][1]["layer"] = json!("mid"),
        &[("act", "layer: \"enc\" -> \"mid\"")],
    );
    step(
        &mut case,
        "the model's weights",
        &|c| flip_a_byte(&c.dir.join("segmenter3d.onnx.data"), 100),
        &[
            ("act", "model.content.segmenter3d.onnx.data"),
            ("ig", "model.content"),
        ],
    );
    step(
        &mut case,
        "the input",
        &|c| flip_a_byte(&c.dir.join("segmenter3d_x1.npy"), 200),
        &[
            ("act", "input: the file's content changed"),
            ("ig", "input"),
        ],
    );
    step(
        &mut case,
        "the wrapper",
        &|c| c.config["model"]["wrapper"] = json!("argmax"),
        &[],
    );
    step(
        &mut case,
        "the mask mode",
        &|c| c.config["model"]["mask_mode"] = json!("fixed"),
        &[("act", "model.mask_mode"), ("ig", "model.mask_mode")],
    );
    step(
        &mut case,
        "the preprocessing",
        &|c| c.config["preprocessing"] = json!({"normalize": "minmax"}),
        &[
            ("act", "preprocessing.normalize"),
            ("ig", "preprocessing.normalize"),
        ],
    );
    step(
        &mut case,
        "the patching",
        &|c| c.config["methods"][0]["patching"] = json!({"size": [8, 8, 8]}),
        &[("ig", "patching")],
    );
    step(
        &mut case,
        "the precision",
        &|c| c.config["execution"] = json!({"precision": "bf16"}),
        &[
            ("act", "precision: \"fp32\" -> \"bf16\""),
            ("ig", "precision"),
        ],
    );
    step(
        &mut case,
        "the seed",
        &|c| c.config["execution"]["seed"] = json!(7),
        &[("act", "seed: 0 -> 7"), ("ig", "seed: 0 -> 7")],
    );
    step(
        &mut case,
        "the plugin",
        &|c| {
            // Bytes after an ELF's last section change its content, not what it does.
            let so = c.dir.join("bin/libesegeta_captum.so");
            let mut bytes = std::fs::read(&so).unwrap();
            bytes.extend_from_slice(b"rebuilt");
            std::fs::write(&so, bytes).unwrap();
        },
        &[
            ("act", "plugin: the file's content changed"),
            ("ig", "plugin"),
        ],
    );
    step(
        &mut case,
        "the target",
        &|c| c.config["inputs"][0]["targets"] = json!([0]),
        &[("act", ""), ("ig", "")],
    );
    assert_eq!(
        last.len(),
        2,
        "records of jobs no longer planned leave the manifest"
    );
    assert!(last.iter().all(|(_, j)| j["target"] == 0));
}
