//! Helpers shared by the end-to-end tests: running the built `esegeta` binary on fixtures and
//! comparing maps.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tch::Tensor;

pub mod captum;
#[allow(unused_imports)]
pub use captum::check_captum_case;

/// One `#[test]` per named fixture case, each calling the test file's `check(name)`, and
/// `LISTED`, the names, so that a test can require every case in the fixtures to be listed.
#[allow(unused_macros)]
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check(stringify!($name)); } )*
        const LISTED: &[&str] = &[$(stringify!($name)),*];
    };
}

/// The Captum reference cases of one fixture folder (`FOLDER/cases.json`, made by a script in
/// tools/): `case(name)`, a test per named case, and a test that every case of the file is
/// named.
#[allow(unused_macros)]
macro_rules! folder_cases {
    ($folder:literal, $($name:ident),* $(,)?) => {
        fn case(name: &str) -> serde_json::Value {
            fixture_case(fixture_cases(concat!($folder, "/cases.json"), "/cases"), name)
        }

        fn check(name: &str) {
            check_captum_case(&case(name), $folder);
        }

        cases!($($name),*);

        #[test]
        fn every_fixture_case_is_listed() {
            for c in fixture_cases(concat!($folder, "/cases.json"), "/cases") {
                let name = c["name"].as_str().unwrap();
                assert!(LISTED.contains(&name), "{name} is not in folder_cases!()");
            }
        }
    };
}

/// The list of cases in a fixture JSON file (at `pointer`, "" for the whole file).
pub fn fixture_cases(file: &str, pointer: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixture(file)).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all.pointer(pointer)
        .and_then(|v| v.as_array())
        .unwrap_or_else(|| panic!("no cases in {file}"))
        .clone()
}

/// The case called `name` in a list of fixture cases.
pub fn fixture_case(cases: Vec<serde_json::Value>, name: &str) -> serde_json::Value {
    cases
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .canonicalize()
        .unwrap()
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The built binary, run from the fixtures folder (relative parameter files resolve there),
/// finding the plugins beside it.
pub fn esegeta() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_esegeta"));
    cmd.current_dir(fixtures())
        .env_remove("ESEGETA_PLUGIN_PATH")
        .env_remove("RUST_LOG");
    cmd
}

/// `esegeta explain --model M --input X --method ID`, to which a test adds its flags.
pub fn explain_cmd(model: &str, input: &str, method: &str) -> Command {
    let mut cmd = esegeta();
    cmd.args([
        "explain", "--model", model, "--input", input, "--method", method,
    ]);
    cmd
}

/// Runs and returns (success, stdout, stderr); fails the test if the process died of a signal
/// (a panic that aborted, a crash).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out: Output = cmd.output().expect("the esegeta binary runs");
    assert!(
        out.status.code().is_some(),
        "esegeta died of a signal: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "esegeta panicked: {stderr}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// Runs and expects failure; returns stderr.
pub fn fails(cmd: &mut Command) -> String {
    let (ok, stdout, stderr) = run(cmd);
    assert!(!ok, "expected a failure, got success: {stdout}");
    stderr
}

/// A fresh temporary folder under target/, removed and recreated.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn load(path: &Path) -> Tensor {
    esegeta::io::load_tensor(path).unwrap_or_else(|e| panic!("{e:#}"))
}

/// `max|a - b|` and `max|b|`.
pub fn max_diff(a: &Tensor, b: &Tensor) -> (f64, f64) {
    assert_eq!(a.size(), b.size(), "shapes differ");
    let diff = (a - b).abs().max().double_value(&[]);
    (diff, b.abs().max().double_value(&[]))
}

/// The convergence delta is `sum(attribution) - (F(x) - F(baseline))`; its error is bounded
/// by the attribution's: tolerance `1e-3 * sum|captum| + 1e-5`.
pub fn check_delta(name: &str, stdout: &str, expected: &[serde_json::Value], captum: &Tensor) {
    let extras = stdout
        .lines()
        .find_map(|l| l.strip_prefix("extras: "))
        .expect("extras printed");
    let extras: serde_json::Value = serde_json::from_str(extras).unwrap();
    let ours = extras["convergence_delta"]
        .as_array()
        .expect("a convergence delta");
    assert_eq!(ours.len(), expected.len(), "{name}: one delta per example");
    let tolerance = 1e-3 * captum.abs().sum(tch::Kind::Double).double_value(&[]) + 1e-5;
    for (o, e) in ours.iter().zip(expected) {
        let (o, e) = (o.as_f64().unwrap(), e.as_f64().unwrap());
        assert!(
            (o - e).abs() <= tolerance,
            "{name}: delta {o} vs Captum's {e} (tolerance {tolerance:e})"
        );
    }
}

/// Runs occlusion of `model` on `input` with `params` and the debug log on; returns stderr.
pub fn occlusion_log(model: &str, input: &str, params: &str, extra: &[&str]) -> String {
    let out = scratch(&format!("occlusion-log-{}", model.replace('/', "-"))).join("map.npy");
    let mut cmd = explain_cmd(model, input, "captum.occlusion");
    cmd.args(["--params", params, "--log-level", "debug"])
        .args(extra)
        .arg("--out")
        .arg(&out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    stderr
}
