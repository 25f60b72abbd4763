//! The plugin SDK end to end, from outside the workspace: `esegeta plugin new` makes a project
//! that builds with the commands of its own README, the host lists and runs its method
//! (methods, schema, explain, run configs), `esegeta plugin check` passes it and fails a junk
//! file and plugins of another ABI version, naming them; the kit catches a hang, a panic and a
//! crash; and examples/plugin-example (Blur Integrated Gradients) agrees with PAIR's saliency.
//!
//! The out-of-tree builds share one cargo target folder, target/plugin-sdk (never the
//! workspace's target/release, where a built `libesegeta_*.so` would load into every other
//! test's `esegeta`): the first build of a clone compiles tch's stack for it (a few minutes on
//! 2 cores: the workspace's own build unifies other features, so its artifacts do not fit),
//! later ones take seconds.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The target folder of the out-of-tree builds.
fn sdk_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("../plugin-sdk")
        .to_path_buf()
}

fn built(name: &str) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_esegeta"));
    bin.parent().unwrap().join(format!("lib{name}.so"))
}

/// The shell commands of the first code block of a README's "## Build and test" section.
fn readme_commands(readme: &Path) -> String {
    let text = std::fs::read_to_string(readme).unwrap();
    let section = text
        .split("## Build and test")
        .nth(1)
        .expect("the README has a Build and test section");
    let block = section.split("```").nth(1).expect("a code block");
    block.lines().skip(1).collect::<Vec<_>>().join("\n")
}

/// Runs `script` with bash in `dir`, building into the shared SDK target folder.
fn bash_in(dir: &Path, script: &str) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", sdk_target())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_plugins(mut cmd: Command, dir: &Path) -> Command {
    cmd.env("ESEGETA_PLUGIN_PATH", dir);
    cmd
}

#[test]
fn a_new_plugin_builds_out_of_tree_and_appears_everywhere() {
    let scratch = scratch("plugin-sdk-acme");
    let project = scratch.join("acme");
    let (ok, stdout, stderr) = run(esegeta()
        .args(["plugin", "new", "acme", "--dir"])
        .arg(&project));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("wrote the plugin project"), "{stdout}");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    let api = checkout().join("plugin-api");
    assert!(
        manifest.contains(&format!("path = \"{}\"", api.display())),
        "the project depends on this checkout's plugin-api by path: {manifest}"
    );
    // The template's tch is the workspace's: a plugin must link the host's libtorch bindings.
    let workspace = std::fs::read_to_string(checkout().join("Cargo.toml")).unwrap();
    for dep in [
        "tch = { version = \"0.26\"",
        "abi_stable = { version = \"0.11.3\"",
    ] {
        assert!(workspace.contains(dep) && manifest.contains(dep), "{dep}");
    }
    // A second `plugin new` into the same folder is refused, and so is a bad name.
    let stderr = fails(
        esegeta()
            .args(["plugin", "new", "acme", "--dir"])
            .arg(&project),
    );
    assert!(
        stderr.contains("already exists and is not empty"),
        "{stderr}"
    );
    let stderr = fails(
        esegeta()
            .args(["plugin", "new", "Acme-Lab", "--dir"])
            .arg(scratch.join("x")),
    );
    assert!(
        stderr.contains("`Acme-Lab` cannot name a plugin"),
        "{stderr}"
    );

    // Build and test with exactly the README's commands.
    let commands = readme_commands(&project.join("README.md"));
    assert!(
        commands.contains("cargo build --release") && commands.contains("cargo test --release"),
        "{commands}"
    );
    let (ok, stdout, stderr) = bash_in(&project, &commands);
    assert!(ok, "the README's commands failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("test result: ok. 2 passed"),
        "the template's tests ran: {stdout}"
    );
    let release = sdk_target().join("release");
    let plugin = release.join("libesegeta_acme.so");
    assert!(plugin.is_file(), "{}", plugin.display());

    // methods, schema, explain.
    let (ok, stdout, stderr) = run(&mut with_plugins(esegeta(), &release).arg("methods"));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("acme.scaled_gradient") && stdout.contains("captum.saliency"),
        "{stdout}"
    );
    let (ok, stdout, _) = run(&mut with_plugins(esegeta(), &release).args([
        "schema",
        "acme.scaled_gradient",
        "--text",
    ]));
    assert!(
        ok && stdout.contains("power") && stdout.contains("keeping its sign"),
        "{stdout}"
    );
    // abs false, times the input: Captum's InputXGradient, whose output is a fixture.
    let out = scratch.join("ixg.npy");
    let mut cmd = with_plugins(
        explain_cmd(
            "classifier2d.pt",
            "classifier2d_x.npy",
            "acme.scaled_gradient",
        ),
        &release,
    );
    cmd.args([
        "--params",
        r#"{"abs": false, "multiply_by_inputs": true}"#,
        "--target",
        "1",
        "--out",
    ])
    .arg(&out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    let (diff, scale) = max_diff(
        &load(&out),
        &load(&fixture("classifier2d_input_x_gradient.npy")),
    );
    // float32 gradients of one model: equal to rounding, 1e-5 of the map's largest value.
    assert!(
        diff <= 1e-5 * scale,
        "max |diff| {diff} against max |captum| {scale}"
    );

    // A run config: checked against the plugin's schema (the GUI's forms use the same one).
    let config = |params: &str| {
        let path = scratch.join("config.json");
        let text = format!(
            r#"{{"model": {{"path": "{}"}},
                "inputs": [{{"path": "{}", "targets": [1]}}],
                "methods": [{{"id": "acme.scaled_gradient", "params": {params}}}],
                "output": {{"folder": "out", "formats": ["npy"]}}}}"#,
            fixture("classifier2d.pt").display(),
            fixture("classifier2d_x.npy").display()
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let stderr = fails(
        with_plugins(esegeta(), &release)
            .args(["check", "--no-model"])
            .arg(config(r#"{"powr": 2}"#)),
    );
    assert!(
        stderr.contains("powr") && stderr.contains("Did you mean `power`?"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(with_plugins(esegeta(), &release)
        .arg("run")
        .arg(config(r#"{"power": 2}"#)));
    assert!(ok && stdout.contains("1 job(s) done"), "{stdout}{stderr}");
    let (ok, stdout, _) = run(&mut with_plugins(esegeta(), &release).args(["methods", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let acme = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "acme.scaled_gradient")
        .unwrap();
    assert!(ok && acme["params_schema"]["properties"]["power"]["default"] == 1.0);

    // The conformance kit passes it ...
    let (ok, stdout, stderr) = run(esegeta().args(["plugin", "check"]).arg(&plugin));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("every check passed (1 method(s))")
            && stdout.contains("2D seed")
            && stdout.contains("3D cancellation"),
        "{stdout}"
    );
    // ... and fails a junk file and plugins of another ABI version, naming them.
    let junk = scratch.join("libjunk.so");
    std::fs::write(&junk, b"not a shared library").unwrap();
    let stderr = fails(esegeta().args(["plugin", "check"]).arg(&junk));
    assert!(
        stderr.contains("plugin check failed for")
            && stderr.contains("libjunk.so is not an esegeta plugin"),
        "{stderr}"
    );
    let abi = esegeta_plugin_api::ABI_VERSION;
    for (name, version) in [
        ("fixture_other_abi", abi + 1),
        ("fixture_older_abi", abi - 1),
    ] {
        let stderr = fails(esegeta().args(["plugin", "check"]).arg(built(name)));
        assert!(
            stderr.contains(&format!(
                "lib{name}.so was built for esegeta plugin ABI version {version}"
            )) && stderr.contains(&format!("this host speaks version {abi}"))
                && stderr.contains("rebuild the plugin"),
            "{stderr}"
        );
    }
}

#[test]
fn the_kit_fails_a_hang_a_panic_and_a_crash_by_method() {
    let mut cmd = esegeta();
    cmd.args(["plugin", "check"]).arg(built("fixture_testkit"));
    for method in [
        "testkit.echo",
        "testkit.hang",
        "testkit.panic",
        "testkit.segfault",
    ] {
        cmd.args(["--method", method]);
    }
    cmd.args(["--params", r#"testkit.hang={"seconds": 4}"#]);
    // Not common::run: the report quotes the panic's message.
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let file = "libfixture_testkit.so";
    assert!(
        stderr.contains("plugin check failed for") && stderr.contains(file),
        "{stderr}"
    );
    for failure in [
        "testkit.hang: 2D cancellation: it was still running",
        "testkit.panic: 2D run: it panicked",
        "testkit.segfault: 2D process: the process crashed (SIGSEGV",
    ] {
        assert!(stderr.contains(failure), "{failure}: {stderr}");
    }
    assert!(!stderr.contains("testkit.echo:"), "echo conforms: {stderr}");
    assert!(stdout.contains("testkit.echo"), "{stdout}");
}

/// How many times the oracle's own float32 noise esegeta's fp32 map may lie from the float64
/// reference: float32 rounding near ReLU kinks is chaotic (batch shape, CPU, the input's last
/// bit), so the margin is wide; an error in the method moves the map by percents.
const FP32_FACTOR: f64 = 8.0;

#[test]
fn the_example_plugin_agrees_with_pair_saliency() {
    let example = checkout().join("examples/plugin-example");
    let (ok, stdout, stderr) = bash_in(
        &example,
        "cargo build --release --offline\ncargo test --release --offline",
    );
    assert!(ok, "{stdout}\n{stderr}");
    let plugins = scratch("plugin-sdk-example");
    let plugin = plugins.join("libesegeta_example.so");
    std::fs::copy(sdk_target().join("release/libesegeta_example.so"), &plugin).unwrap();
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("plugin_example/cases.json")).unwrap(),
    )
    .unwrap();
    for (name, case) in cases.as_object().unwrap() {
        let reference = load(&fixture(&format!("plugin_example/{name}.npy")));
        // The reference is saliency's BlurIG with the model in float64. esegeta's fp64 run
        // blurs in float64 as saliency does and differs by the blur's last bits and the
        // float32 file it writes: within 1e-6 of the map's largest value (measured: 0, the
        // same float32 numbers, in every case).
        let (diff, scale) = max_diff(&explain_example(&plugins, name, case, "fp64"), &reference);
        assert!(
            scale > 0.0 && diff <= 1e-6 * scale,
            "{name} (fp64): max |diff| {diff}, max |saliency| {scale}"
        );
        // In float32 the map moves with rounding wherever a ReLU input sits near zero, as the
        // default max_sigma's nearly blank images make them: the oracle's own float32 map lies
        // `float32_noise` from the reference (2D 5.9e-3, 3D 2.6e-5 of scale; 1e-7 to 2e-7 with
        // small blurs). esegeta's fp32 run must be within FP32_FACTOR times that, or 1e-5
        // where that is larger (measured: 5.9e-3, 2.6e-5 and 1.5e-7 to 2.0e-7 of scale, as
        // close as the oracle's own float32 maps; on another machine 3D's lay 5.9e-5 from the
        // oracle's float32 map).
        let noise = case["float32_noise"].as_f64().unwrap();
        let (diff, scale) = max_diff(&explain_example(&plugins, name, case, "fp32"), &reference);
        let tolerance = (FP32_FACTOR * noise).max(1e-5);
        assert!(
            diff <= tolerance * scale,
            "{name} (fp32): max |diff| {diff}, max |saliency| {scale}, the oracle's float32 \
             noise {noise} of scale"
        );
    }
    let (ok, stdout, stderr) = run(esegeta().args(["plugin", "check"]).arg(&plugin));
    assert!(
        ok && stdout.contains("every check passed"),
        "{stdout}\n{stderr}"
    );
}

/// Runs `example.blur_integrated_gradients` on a case of plugin_example/cases.json at
/// `precision`, and returns the map.
fn explain_example(
    plugins: &Path,
    name: &str,
    case: &serde_json::Value,
    precision: &str,
) -> tch::Tensor {
    let out = plugins.join(format!("{name}_{precision}.npy"));
    let mut cmd = with_plugins(
        explain_cmd(
            case["model"].as_str().unwrap(),
            case["input"].as_str().unwrap(),
            "example.blur_integrated_gradients",
        ),
        plugins,
    );
    cmd.arg("--params")
        .arg(case["params"].to_string())
        .arg("--target")
        .arg(case["target"].to_string())
        .args(["--precision", precision, "--out"])
        .arg(&out);
    if let Some(wrapper) = case["wrapper"].as_str() {
        cmd.args(["--wrapper", wrapper, "--fixed-mask"]);
    }
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{name} ({precision}): {stderr}");
    load(&out)
}
