//! Plugin discovery, refusal of incompatible plugins, panics, and tensor ownership across the
//! boundary.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use abi_stable::std_types::RStr;
use common::*;
use esegeta::host_services::JobHost;
use esegeta::model::Model;
use esegeta::plugins::Registry;
use esegeta::task::TaskWrapper;
use esegeta_plugin_api::abi::RunRequest;
use esegeta_plugin_api::TensorRef;
use tch::Tensor;

fn built(name: &str) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_esegeta"));
    bin.parent().unwrap().join(format!("lib{name}.so"))
}

/// A folder holding copies of the given built libraries (under new names).
fn plugin_dir(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = scratch(test);
    for (built_name, file_name) in files {
        std::fs::copy(built(built_name), dir.join(file_name)).unwrap();
    }
    dir
}

fn methods_with(dir: &Path) -> (String, String) {
    let (ok, stdout, stderr) = run(esegeta().arg("--plugins").arg(dir).arg("methods"));
    assert!(ok, "{stderr}");
    (stdout, stderr)
}

#[test]
fn finds_plugins_beside_the_binary_and_lists_methods_as_json() {
    let (ok, stdout, stderr) = run(esegeta().args(["methods", "--json"]));
    assert!(ok, "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let ig = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "captum.integrated_gradients")
        .unwrap();
    assert_eq!(ig["kind"], "attribution");
    assert_eq!(ig["needs"]["gradients"], true);
    assert_eq!(ig["params_schema"]["properties"]["n_steps"]["default"], 50);
    assert!(
        !stdout.contains("testkit"),
        "fixture plugins must not load from the binary's folder"
    );
}

#[test]
fn finds_plugins_in_esegeta_plugin_path_and_plugins_flag() {
    let dir = plugin_dir("path-env", &[("fixture_testkit", "libfixture_testkit.so")]);
    let path = std::env::join_paths([Path::new("/nonexistent"), &dir]).unwrap();
    let (ok, stdout, _) = run(esegeta().env("ESEGETA_PLUGIN_PATH", path).arg("methods"));
    assert!(
        ok && stdout.contains("testkit.echo") && stdout.contains("captum.saliency"),
        "{stdout}"
    );
    let (stdout, _) = methods_with(&dir);
    assert!(stdout.contains("testkit.panic"), "{stdout}");
}

#[test]
fn a_file_that_is_not_a_plugin_is_named_and_skipped() {
    let dir = plugin_dir(
        "not-a-plugin",
        &[("fixture_testkit", "libfixture_testkit.so")],
    );
    std::fs::write(dir.join("libbroken.so"), b"this is not a shared library").unwrap();
    let (stdout, stderr) = methods_with(&dir);
    assert!(
        stderr.contains("libbroken.so is not an esegeta plugin"),
        "{stderr}"
    );
    assert!(
        stderr.contains("remove it from the plugin folder"),
        "{stderr}"
    );
    assert!(
        stdout.contains("testkit.echo") && stdout.contains("captum.saliency"),
        "{stdout}"
    );
}

#[test]
fn plugins_built_for_another_abi_or_libtorch_are_refused_by_name() {
    let dir = plugin_dir(
        "other-versions",
        &[
            ("fixture_other_abi", "libfixture_other_abi.so"),
            ("fixture_other_torch", "libfixture_other_torch.so"),
        ],
    );
    let (stdout, stderr) = methods_with(&dir);
    let abi = esegeta_plugin_api::ABI_VERSION;
    assert!(
        stderr.contains(&format!(
            "libfixture_other_abi.so was built for esegeta plugin ABI version {}",
            abi + 1
        )) && stderr.contains(&format!("this host speaks version {abi}"))
            && stderr.contains("rebuild the plugin"),
        "{stderr}"
    );
    assert!(
        stderr.contains("libfixture_other_torch.so was built against libtorch 1.13.1+cpu")
            && stderr.contains(esegeta_plugin_api::LIBTORCH_VERSION),
        "{stderr}"
    );
    assert!(
        stdout.contains("captum.saliency"),
        "the other plugins still load: {stdout}"
    );
}

#[test]
fn two_plugins_claiming_one_method_id_are_reported_and_the_first_wins() {
    let dir = plugin_dir(
        "duplicate",
        &[("esegeta_captum", "libesegeta_captum_copy.so")],
    );
    let (stdout, stderr) = methods_with(&dir);
    assert!(
        stderr.contains("provides method `captum.saliency`, which")
            && stderr.contains("libesegeta_captum_copy.so")
            && stderr.contains("Remove one of the two files"),
        "{stderr}"
    );
    assert_eq!(stdout.matches("captum.saliency").count(), 1, "{stdout}");
}

#[test]
fn a_panicking_method_fails_its_job_without_aborting() {
    let dir = plugin_dir("panic", &[("fixture_testkit", "libfixture_testkit.so")]);
    let out = scratch("panic-out").join("map.npy");
    let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "testkit.panic");
    cmd.arg("--plugins").arg(&dir).arg("--out").arg(&out);
    let output = cmd.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the method panicked: testkit.panic was asked to panic"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn schema_prints_one_methods_parameter_schema() {
    let (ok, stdout, _) = run(esegeta().args(["schema", "captum.occlusion"]));
    assert!(ok);
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        schema["properties"]["sliding_window_shapes"].is_object(),
        "{schema}"
    );
    let stderr = fails(esegeta().args(["schema", "captum.oclusion"]));
    assert!(
        stderr.contains("Did you mean `captum.occlusion`?"),
        "{stderr}"
    );
}

/// `sum(inputs)` per example as a single score column.
struct SumModel;

impl Model for SumModel {
    fn forward(&self, inputs: &Tensor) -> anyhow::Result<Tensor> {
        Ok(inputs
            .flatten(1, -1)
            .sum_dim_intlist(1, true, tch::Kind::Float))
    }
    fn layers(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![])
    }
    fn parameters(&self) -> anyhow::Result<Vec<(String, Tensor)>> {
        Ok(vec![])
    }
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 10,000 calls through the ABI, each crossing a borrowed input, an owned forward output, an
/// autograd graph and an owned attribution. A leaked 48 KiB tensor per call would add
/// ~430 MiB; a double free would abort the process.
#[test]
fn ten_thousand_calls_neither_leak_nor_double_free() {
    let mut registry = Registry::default();
    registry.add(&built("fixture_testkit"));
    assert!(registry.problems.is_empty(), "{:?}", registry.problems);
    let cancelled = AtomicBool::new(false);
    let host = JobHost {
        model: &SumModel,
        wrapper: &TaskWrapper::Classification,
        registry: &registry,
        base_dir: PathBuf::from("."),
        seed: 0,
        memory_budget: 1 << 20,
        cancelled: &cancelled,
        progress: None,
        device: tch::Device::Cpu,
        kind: tch::Kind::Float,
        near: Default::default(),
        warnings: Default::default(),
        segments: None,
    };
    let inputs = Tensor::rand([1, 3, 64, 64], (tch::Kind::Float, tch::Device::Cpu));
    let call = || {
        let request = RunRequest {
            method_id: RStr::from_str("testkit.echo"),
            params_json: RStr::from_str("{}"),
            inputs: TensorRef::new(&inputs),
            target: 0,
        };
        host.run(request).unwrap().attribution.into_tensor()
    };
    for _ in 0..1000 {
        drop(call());
    }
    let before = resident_kib();
    for _ in 0..9000 {
        drop(call());
    }
    let growth = resident_kib().saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "resident memory grew by {growth} KiB over 9,000 calls"
    );
    let (diff, _) = max_diff(&call(), &(&inputs * 2.0));
    assert_eq!(diff, 0.0, "the attribution came back intact");
}
