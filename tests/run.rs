//! `esegeta run`: configs checked before any job, jobs on workers, timeouts with and without
//! isolation, crashes costing one job, resume after a kill, and shards.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tch::Tensor;

/// A folder holding only the testkit plugin (the binary's folder also holds the fixture
/// plugins that must be refused).
fn testkit_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("run-testkit");
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_esegeta"));
        std::fs::copy(
            bin.with_file_name("libfixture_testkit.so"),
            dir.join("libfixture_testkit.so"),
        )
        .unwrap();
        dir
    })
    .clone()
}

/// Writes `config` into a fresh folder (its output goes to `out/` there) and returns its path.
fn write_config(test: &str, config: Value) -> PathBuf {
    let dir = scratch(test);
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

fn classifier_config(methods: Value, execution: Value) -> Value {
    json!({
        "model": {"path": fixture("classifier2d.pt")},
        "inputs": [
            {"path": fixture("classifier2d_x.npy"), "targets": [1]},
            {"path": fixture("rgb.png"), "targets": [0, 2]}
        ],
        "methods": methods,
        "execution": execution,
        "output": {"folder": "out", "formats": ["npy"]}
    })
}

/// `esegeta --plugins <testkit> run CONFIG [extra]`.
fn run_cmd(config: &Path, extra: &[&str]) -> Command {
    let mut cmd = esegeta();
    cmd.arg("--plugins")
        .arg(testkit_dir())
        .arg("run")
        .arg(config)
        .args(extra);
    cmd
}

fn manifest(config: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(config.parent().unwrap().join("out").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn statuses(m: &Value) -> Vec<(String, String)> {
    m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_string(),
                j["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn job<'a>(m: &'a Value, id_part: &str) -> &'a Value {
    m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"].as_str().unwrap().contains(id_part))
        .unwrap()
}

#[test]
fn a_bad_config_reports_every_problem_by_json_path_before_any_job() {
    let config = write_config(
        "run-bad-config",
        json!({
            "model": {"path": fixture("classifier2d.pt")},
            "inputs": [
                {"path": "missing/*.npy", "targets": [1]},
                {"path": fixture("classifier2d_x.npy"), "targets": [1], "mask": fixture("roi.npy")}
            ],
            "methods": [
                {"id": "captum.saliency"},
                {"id": "captum.integrated_gradients", "params": {"n_steps": "fifty"}},
                {"id": "captum.salency"}
            ],
            "output": {"folder": "out"}
        }),
    );
    let out = run_cmd(&config, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in [
        "inputs[0].path: `missing/*.npy` matches no file",
        "inputs[1].mask: a region is for the `mask` wrapper",
        r#"methods[1].params.n_steps: "fifty" is not of type "integer""#,
        "methods[2].id: unknown method `captum.salency`. Did you mean `captum.saliency`?",
    ] {
        assert!(stderr.contains(part), "expected {part:?} in {stderr}");
    }
    assert!(
        !config.parent().unwrap().join("out/results.json").exists(),
        "no job ran"
    );
    let config = write_config(
        "run-bad-shape",
        json!({"model": {}, "inputs": [], "methods": [], "output": {"folder": 3}}),
    );
    let stderr = fails(&mut run_cmd(&config, &[]));
    assert!(
        stderr.contains("model: \"path\" is a required property")
            && stderr.contains("output.folder: 3 is not of type \"string\""),
        "{stderr}"
    );
}

#[test]
fn a_run_explains_every_input_method_and_target_like_explain_does() {
    let methods = json!([{"id": "captum.saliency"}, {"id": "captum.integrated_gradients", "params": {"n_steps": 8}}]);
    let config = write_config(
        "run-basic",
        classifier_config(methods, json!({"workers_per_device": 2})),
    );
    let (ok, stdout, stderr) = run(&mut run_cmd(&config, &[]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("6 job(s) done"), "{stdout}");
    let m = manifest(&config, "results.json");
    assert!(statuses(&m).iter().all(|(_, s)| s == "done"), "{m}");
    let ig = job(
        &m,
        "classifier2d_x/classifier2d/captum.integrated_gradients/target1",
    );
    assert!(ig["extras"]["convergence_delta"].is_array());
    let map = load(Path::new(ig["files"][0].as_str().unwrap()));
    let single = scratch("run-basic-single").join("ig.npy");
    let mut cmd = explain_cmd(
        "classifier2d.pt",
        "classifier2d_x.npy",
        "captum.integrated_gradients",
    );
    cmd.args(["--params", r#"{"n_steps": 8}"#, "--target", "1", "--out"])
        .arg(&single);
    assert!(run(&mut cmd).0);
    let (diff, _) = max_diff(&map, &load(&single));
    assert_eq!(diff, 0.0);
}

#[test]
fn a_panicking_method_fails_its_jobs_and_the_run_goes_on() {
    let methods = json!([{"id": "testkit.panic"}, {"id": "captum.saliency"}]);
    let config = write_config("run-panic", classifier_config(methods, json!({})));
    let out = run_cmd(&config, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let m = manifest(&config, "results.json");
    let s = statuses(&m);
    assert_eq!(s.iter().filter(|(_, s)| s == "failed").count(), 3, "{s:?}");
    assert_eq!(s.iter().filter(|(_, s)| s == "done").count(), 3, "{s:?}");
    assert!(job(&m, "testkit.panic")["error"]
        .as_str()
        .unwrap()
        .contains("panicked"));
}

fn one_input(methods: Value, execution: Value) -> Value {
    json!({
        "model": {"path": fixture("classifier2d.pt")},
        "inputs": [{"path": fixture("classifier2d_x.npy"), "targets": [1]}],
        "methods": methods,
        "execution": execution,
        "output": {"folder": "out", "formats": ["npy"]}
    })
}

#[test]
fn a_cooperative_method_is_cancelled_at_its_timeout_without_isolation() {
    let methods = json!([{"id": "testkit.sleep", "params": {"seconds": 30}, "timeout_s": 1.0}, {"id": "captum.saliency"}]);
    let config = write_config("run-timeout-threads", one_input(methods, json!({})));
    let started = Instant::now();
    let out = run_cmd(&config, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let m = manifest(&config, "results.json");
    let sleep = job(&m, "testkit.sleep");
    assert_eq!(sleep["status"], "timed_out");
    assert!(sleep["duration_s"].as_f64().unwrap() < 1.5, "{sleep}");
    assert_eq!(job(&m, "captum.saliency")["status"], "done");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn under_isolation_a_hang_is_killed_at_the_deadline_and_a_segfault_costs_one_job() {
    let methods = json!([
        {"id": "testkit.hang", "params": {"seconds": 60}, "timeout_s": 2.0},
        {"id": "testkit.segfault"},
        {"id": "captum.saliency"}
    ]);
    let config = write_config(
        "run-isolation",
        one_input(methods, json!({"isolation": "process"})),
    );
    let started = Instant::now();
    let out = run_cmd(&config, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the hang was not killed"
    );
    let m = manifest(&config, "results.json");
    let hang = job(&m, "testkit.hang");
    assert_eq!(hang["status"], "timed_out", "{hang}");
    let overshoot = hang["duration_s"].as_f64().unwrap() - 2.0;
    assert!(
        (0.0..1.0).contains(&overshoot),
        "killed {overshoot} s after the deadline"
    );
    let crash = job(&m, "testkit.segfault");
    assert_eq!(crash["status"], "failed");
    assert!(
        crash["error"].as_str().unwrap().contains("signal 11"),
        "{crash}"
    );
    assert_eq!(job(&m, "captum.saliency")["status"], "done");
}

/// The config's second method, `testkit.sleep`, made quick: the run after an interrupted one.
fn make_slow_quick(config: &Path) {
    let mut edited: Value =
        serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    edited["methods"][1]["params"]["seconds"] = json!(0.01);
    std::fs::write(config, edited.to_string()).unwrap();
}

/// SIGTERM (the GUI's cancel) or Ctrl-C: the running job is cancelled at its next check and
/// recorded as such, no other job starts, the run exits 5 with its manifest and report
/// written, and the next run redoes what was not finished.
#[test]
fn a_stopped_run_records_the_running_job_as_cancelled_and_the_next_run_redoes_it() {
    use std::io::BufRead;
    let methods = json!([
        {"id": "captum.saliency"},
        {"id": "testkit.sleep", "name": "slow", "params": {"seconds": 60}}
    ]);
    let config = write_config("run-stop", classifier_config(methods, json!({})));
    let mut child = run_cmd(&config, &["--events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut started_slow = 0;
    for line in lines.by_ref().map_while(Result::ok) {
        let event: Value = serde_json::from_str(&line).unwrap_or_default();
        if event["event"] == "job_started" && event["id"].as_str().unwrap().contains("slow") {
            started_slow += 1;
            // SAFETY: signals the child this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            break;
        }
    }
    // Reads the events to the end: a closed pipe would end the run with SIGPIPE instead.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let started = Instant::now();
    let status = child.wait().unwrap();
    let rest = rest.join().unwrap();
    assert_eq!(started_slow, 1);
    assert_eq!(status.code(), Some(5), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it ended {:?} after the signal, not at the job's next check",
        started.elapsed()
    );
    let first = manifest(&config, "results.json");
    let counts = |m: &Value, s: &str| statuses(m).iter().filter(|(_, x)| x == s).count();
    assert_eq!(counts(&first, "cancelled"), 1, "{first}");
    assert_eq!(
        statuses(&first).len(),
        counts(&first, "done") + 1,
        "{first}"
    );
    let finished = |l: &String| l.contains("job_finished") && l.contains("\"cancelled\"");
    assert!(rest.iter().any(finished), "{rest:?}");
    let cancelled = first["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["status"] == "cancelled")
        .unwrap();
    assert!(
        cancelled["error"]
            .as_str()
            .unwrap()
            .contains("run the config again"),
        "{cancelled}"
    );
    assert!(config.parent().unwrap().join("out/report.html").is_file());
    assert!(!config
        .parent()
        .unwrap()
        .join("out/results.json.lock")
        .exists());
    // The next run (the slow method quick now) redoes the cancelled and unstarted jobs only.
    make_slow_quick(&config);
    let (ok, _, stderr) = run(&mut run_cmd(&config, &[]));
    assert!(ok, "{stderr}");
    let second = manifest(&config, "results.json");
    assert_eq!(counts(&second, "done"), 6, "{second}");
    for j in first["jobs"].as_array().unwrap() {
        if j["status"] == "done" {
            let again = job(&second, j["id"].as_str().unwrap());
            assert_eq!(
                again["duration_s"], j["duration_s"],
                "a finished job was redone"
            );
        }
    }
}

#[test]
fn a_run_killed_half_way_resumes_without_redoing_or_losing_jobs() {
    let methods = json!([
        {"id": "captum.saliency"},
        {"id": "testkit.sleep", "name": "slow", "params": {"seconds": 60}}
    ]);
    let config = write_config("run-resume", classifier_config(methods, json!({})));
    let mut child = run_cmd(&config, &[]).spawn().unwrap();
    let results = config.parent().unwrap().join("out/results.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    // The first job (by id) is a quick saliency one; the second sleeps: kill the run there.
    while Instant::now() < deadline
        && !std::fs::read_to_string(&results).is_ok_and(|t| t.contains("\"done\""))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = manifest(&config, "results.json");
    let finished = first["jobs"].as_array().unwrap().len();
    assert!(
        finished >= 1 && statuses(&first).iter().all(|(_, s)| s == "done"),
        "{first}"
    );
    // The second run must not redo the saliency jobs: make the slow ones quick now.
    make_slow_quick(&config);
    let (ok, stdout, stderr) = run(&mut run_cmd(&config, &[]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("({finished} finished by an earlier run)")),
        "{stdout}"
    );
    let second = manifest(&config, "results.json");
    assert_eq!(second["jobs"].as_array().unwrap().len(), 6);
    for j in first["jobs"].as_array().unwrap() {
        let again = job(&second, j["id"].as_str().unwrap());
        assert_eq!(
            again["duration_s"], j["duration_s"],
            "a finished job was redone"
        );
    }
    assert!(
        std::fs::read_dir(
            config
                .parent()
                .unwrap()
                .join("out/classifier2d_x/classifier2d")
        )
        .unwrap()
        .all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".esegeta-")
        }),
        "no half-written file is left"
    );
}

#[test]
fn three_shards_run_as_separate_processes_equal_the_single_run() {
    let methods = json!([{"id": "captum.saliency"}, {"id": "captum.occlusion", "params": {"sliding_window_shapes": [3, 3, 3], "strides": [1, 2, 2]}}]);
    let single = write_config("run-single", classifier_config(methods.clone(), json!({})));
    assert!(run(&mut run_cmd(&single, &[])).0);
    let sharded = write_config("run-shards", classifier_config(methods, json!({})));
    let shards: Vec<_> = (0..3)
        .map(|i| {
            run_cmd(&sharded, &["--shard", &format!("{i}/3")])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut s in shards {
        assert!(s.wait().unwrap().success());
    }
    let mut merge = esegeta();
    merge
        .arg("merge")
        .arg(sharded.parent().unwrap().join("out"));
    assert!(run(&mut merge).0);
    let (a, b) = (
        manifest(&single, "results.json"),
        manifest(&sharded, "results.json"),
    );
    assert_eq!(statuses(&a), statuses(&b));
    assert_eq!(statuses(&a).len(), 6);
    for (id, _) in statuses(&a) {
        let file = |m: &Value| PathBuf::from(job(m, &id)["files"][0].as_str().unwrap());
        let (diff, _) = max_diff(&load(&file(&a)), &load(&file(&b)));
        assert_eq!(diff, 0.0, "{id}");
    }
}

/// Runs signed saliency (and `more`) on one input at `precision`; checks that its record names
/// the precision and no fallback, and returns the manifest, the map and Captum's fp32 map.
fn saliency_run(test: &str, precision: &str, more: Option<Value>) -> (Value, Tensor, Tensor) {
    let mut methods = vec![json!({"id": "captum.saliency", "params": {"abs": false}})];
    methods.extend(more);
    let execution = json!({ "precision": precision });
    let config = write_config(test, one_input(Value::from(methods), execution));
    let (ok, _, stderr) = run(&mut run_cmd(&config, &[]));
    assert!(ok, "{stderr}");
    let m = manifest(&config, "results.json");
    let saliency = job(&m, "captum.saliency");
    assert_eq!(
        (
            saliency["precision"].as_str(),
            saliency["precision_fallback"].as_bool()
        ),
        (Some(precision), Some(false))
    );
    let ours = load(Path::new(saliency["files"][0].as_str().unwrap()));
    let captum = load(&fixture("classifier2d_saliency_noabs.npy"));
    (m, ours, captum)
}

#[test]
fn reduced_precision_runs_and_falls_back_to_fp32_when_the_map_is_not_finite() {
    let more = json!({"id": "testkit.nan_below_fp32"});
    let (m, ours, captum) = saliency_run("run-bf16", "bf16", Some(more));
    // bf16 keeps 8 bits of mantissa, and a rounding can flip a ReLU's gate, so single elements
    // may differ a lot: require the map as a whole to agree with fp32 Captum, mean |diff| within
    // 2% of the map's scale and correlation at least 0.99 (measured: 1% and 0.995).
    let (_, scale) = max_diff(&ours, &captum);
    let mean_diff = (&ours - &captum)
        .abs()
        .mean(tch::Kind::Double)
        .double_value(&[]);
    assert!(
        mean_diff <= 0.02 * scale,
        "bf16 saliency differs by {mean_diff} on average (scale {scale})"
    );
    let pair =
        Tensor::stack(&[ours.flatten(0, -1), captum.flatten(0, -1)], 0).to_kind(tch::Kind::Double);
    let correlation = pair.corrcoef().double_value(&[0, 1]);
    assert!(correlation >= 0.99, "correlation {correlation}");
    let nan = job(&m, "testkit.nan_below_fp32");
    assert_eq!(nan["precision_fallback"], true, "{nan}");
    let map = load(Path::new(nan["files"][0].as_str().unwrap()));
    let (diff, _) = max_diff(&map, &load(&fixture("classifier2d_x.npy")));
    assert_eq!(diff, 0.0, "recomputed in fp32");
}

/// fp64 runs model and method in float64: the saliency map is Captum's (fp32) up to float32
/// rounding, and not bit-equal to it, since float64 arithmetic rounded it differently.
#[test]
fn an_fp64_run_computes_in_float64() {
    let (_, ours, captum) = saliency_run("run-fp64", "fp64", None);
    // Within 1e-5 of the map's scale (measured: 1.1e-7).
    let (diff, scale) = max_diff(&ours, &captum);
    assert!(diff > 0.0 && diff <= 1e-5 * scale, "{diff} (scale {scale})");
}

#[test]
fn patched_volumes_are_stitched_on_the_source_grid() {
    let config = |patching: Value| {
        json!({
            "model": {"path": fixture("segmenter3d.pt"), "task": "segmentation", "wrapper": "argmax"},
            "inputs": [{"path": fixture("vol.nii.gz"), "targets": [1]}],
            "methods": [{"id": "captum.saliency"}],
            "execution": {"patching": patching},
            "output": {"folder": "out", "formats": ["npy", "nii.gz", "png"]}
        })
    };
    // One window covering the volume: the same map as without patching.
    let whole = write_config("run-patch-whole", config(json!({"size": [8, 6, 4]})));
    assert!(run(&mut run_cmd(&whole, &[])).0);
    let single = scratch("run-patch-single").join("map.npy");
    let mut cmd = explain_cmd("segmenter3d.pt", "vol.nii.gz", "captum.saliency");
    cmd.args(["--task", "segmentation", "--target", "1", "--out"])
        .arg(&single);
    assert!(run(&mut cmd).0);
    let m = manifest(&whole, "results.json");
    let patched = load(Path::new(job(&m, "saliency")["files"][0].as_str().unwrap()));
    let (diff, scale) = max_diff(&patched, &load(&single));
    assert!(diff <= 1e-6 * scale, "{diff}");
    // Overlapping windows: a full map, on the source's grid.
    let overlapping = write_config(
        "run-patch-overlap",
        config(json!({"size": [4, 4, 4], "overlap": 0.5})),
    );
    let (ok, _, stderr) = run(&mut run_cmd(&overlapping, &[]));
    assert!(ok, "{stderr}");
    let m = manifest(&overlapping, "results.json");
    let files: Vec<&str> = job(&m, "saliency")["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 3);
    let nifti = esegeta::io::load_input(Path::new(
        files.iter().find(|f| f.ends_with(".nii.gz")).unwrap(),
    ))
    .unwrap();
    assert_eq!(nifti.tensor.size(), vec![1, 1, 8, 6, 4]);
    assert_eq!(
        job(&m, "saliency")["extras"]["patches"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
}

#[test]
fn cropped_and_normalised_inputs_give_maps_on_the_inputs_grid() {
    let config = json!({
        "model": {"path": fixture("classifier2d.pt")},
        "inputs": [{"path": fixture("classifier2d_x.npy"), "targets": [1]}],
        "preprocessing": {"crop": [6, 6], "normalize": "minmax"},
        "methods": [{"id": "captum.saliency", "params": {"abs": false}}],
        "output": {"folder": "out", "formats": ["npy"]}
    });
    let config = write_config("run-preprocess", config);
    let (ok, _, stderr) = run(&mut run_cmd(&config, &[]));
    assert!(ok, "{stderr}");
    let m = manifest(&config, "results.json");
    let map = load(Path::new(job(&m, "saliency")["files"][0].as_str().unwrap()));
    assert_eq!(
        map.size(),
        vec![1, 3, 8, 8],
        "the map is on the input's grid"
    );
    assert_eq!(
        map.narrow(2, 0, 1).abs().max().double_value(&[]),
        0.0,
        "zero where the crop cut"
    );
    // The same by hand: crop the centre 6x6, min-max normalise, explain.
    let x = load(&fixture("classifier2d_x.npy"))
        .narrow(2, 1, 6)
        .narrow(3, 1, 6);
    let x = (&x - x.min()) / (x.max() - x.min());
    let prepared = config.parent().unwrap().join("prepared.npy");
    x.write_npy(&prepared).unwrap();
    let single = config.parent().unwrap().join("single.npy");
    let mut cmd = explain_cmd(
        "classifier2d.pt",
        prepared.to_str().unwrap(),
        "captum.saliency",
    );
    cmd.args(["--params", r#"{"abs": false}"#, "--target", "1", "--out"])
        .arg(&single);
    assert!(run(&mut cmd).0);
    let (diff, scale) = max_diff(&map.narrow(2, 1, 6).narrow(3, 1, 6), &load(&single));
    assert!(diff <= 1e-6 * scale, "{diff}");
}

/// Two models: the classifier and its fixed-batch copy (same weights), so their maps agree.
fn two_model_config(methods: Value) -> Value {
    json!({
        "models": [
            {"path": fixture("classifier2d.pt"), "name": "free"},
            {"path": fixture("classifier2d_fixed_b1.pt"), "name": "fixed"}
        ],
        "inputs": [{"path": fixture("classifier2d_x.npy"), "targets": [0, 1]}],
        "methods": methods,
        "output": {"folder": "out", "formats": ["npy"]}
    })
}

#[test]
fn several_models_each_get_every_job_labelled_in_ids_paths_shards_and_merge() {
    let methods = json!([{"id": "captum.saliency"}, {"id": "captum.input_x_gradient"}]);
    let config = write_config("run-models", two_model_config(methods.clone()));
    let (ok, stdout, stderr) = run(&mut run_cmd(&config, &[]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("8 job(s) done"), "{stdout}");
    let m = manifest(&config, "results.json");
    for model in ["free", "fixed"] {
        let id = format!("classifier2d_x/{model}/captum.saliency/target1");
        let j = job(&m, &id);
        assert_eq!(j["model"], model);
        let file = j["files"][0].as_str().unwrap();
        assert!(
            file.ends_with(&format!(
                "out/classifier2d_x/{model}/captum.saliency_target1.npy"
            )),
            "{file}"
        );
    }
    // Same weights, so the same map (up to float noise of another batch size: 1e-6 of scale).
    let file = |id: &str| PathBuf::from(job(&m, id)["files"][0].as_str().unwrap());
    let (free, fixed) = (
        load(&file("free/captum.input_x_gradient/target0")),
        load(&file("fixed/captum.input_x_gradient/target0")),
    );
    let (diff, scale) = max_diff(&free, &fixed);
    assert!(diff <= 1e-6 * scale, "{diff} of {scale}");

    // Shards split the model x method x target jobs and merge back to the same manifest.
    let sharded = write_config("run-models-shards", two_model_config(methods));
    for i in 0..2 {
        assert!(run(&mut run_cmd(&sharded, &["--shard", &format!("{i}/2")])).0);
    }
    let mut merge = esegeta();
    merge
        .arg("merge")
        .arg(sharded.parent().unwrap().join("out"));
    assert!(run(&mut merge).0);
    let merged = manifest(&sharded, "results.json");
    assert_eq!(statuses(&merged), statuses(&m));
    // A rerun resumes: nothing left to do.
    let (ok, stdout, _) = run(&mut run_cmd(&config, &[]));
    assert!(
        ok && stdout.contains("(8 finished by an earlier run)"),
        "{stdout}"
    );
}

#[test]
fn model_lists_are_checked_by_json_path() {
    let mut both = two_model_config(json!([{"id": "captum.saliency"}]));
    both["model"] = json!({"path": fixture("classifier2d.pt")});
    let stderr = fails(&mut run_cmd(&write_config("run-models-both", both), &[]));
    assert!(
        stderr.contains("model: give either `model` (one model) or `models`"),
        "{stderr}"
    );

    let mut twins = two_model_config(json!([{"id": "captum.saliency"}]));
    twins["models"][1]["name"] = json!("free");
    twins["models"][0]["path"] = json!("nowhere.pt");
    twins["models"][0]["wrapper"] = json!("argmax");
    let stderr = fails(&mut run_cmd(&write_config("run-models-twins", twins), &[]));
    for part in [
        "models[0].path: ",
        "nowhere.pt does not exist",
        "models[0].wrapper: wrappers are for segmentation",
        "models[1].name: two models are labelled `free`",
    ] {
        assert!(stderr.contains(part), "expected {part:?} in {stderr}");
    }

    let mut neither = two_model_config(json!([{"id": "captum.saliency"}]));
    neither.as_object_mut().unwrap().remove("models");
    let stderr = fails(&mut run_cmd(&write_config("run-models-none", neither), &[]));
    assert!(stderr.contains("model: missing; give `model`"), "{stderr}");
}

#[test]
fn cascading_randomisation_saves_each_stage_and_compares_it_with_the_original() {
    let config = json!({
        "model": {"path": fixture("segmenter3d.pt"), "task": "segmentation"},
        "inputs": [{"path": fixture("seg3d_x.npy"), "targets": [1]}],
        "methods": [{"id": "captum.saliency", "params": {"abs": false}}, {"id": "captum.input_x_gradient"}],
        "randomisation": {"granularity": "layer", "methods": ["captum.saliency"], "seed": 5},
        "output": {"folder": "out", "formats": ["npy"]}
    });
    let path = write_config("run-randomisation", config);
    let (ok, stdout, stderr) = run(&mut run_cmd(&path, &[]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("3 job(s) done"), "{stdout}");
    let m = manifest(&path, "results.json");
    let cascade = job(
        &m,
        "seg3d_x/segmenter3d/captum.saliency/target1/randomisation",
    );
    let extras = &cascade["extras"];
    assert_eq!(extras["order"], json!(["head", "mid", "enc"]));
    let stages = extras["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4, "the original and one stage per layer");
    for (k, stage) in stages.iter().enumerate() {
        assert_eq!(stage["stage"], k);
        assert_eq!(stage["randomised"], json!(["head", "mid", "enc"][..k]));
        assert!(Path::new(stage["file"].as_str().unwrap()).is_file());
        // 8^3 maps are smaller than SSIM's 11-voxel window: no SSIM, said by a null.
        assert!(stage["ssim"].is_null());
    }
    // Stage 0 is the trained model: the plain job's map, so correlations of 1.
    let plain = load(Path::new(
        job(&m, "segmenter3d/captum.saliency/target1")["files"][0]
            .as_str()
            .unwrap(),
    ));
    let stage0 = load(Path::new(stages[0]["file"].as_str().unwrap()));
    assert_eq!(max_diff(&plain, &stage0).0, 0.0);
    assert_eq!(stages[0]["spearman"], 1.0);
    // Re-initialising the layers changes the map.
    let last = load(Path::new(stages[3]["file"].as_str().unwrap()));
    assert!(max_diff(&plain, &last).0 > 0.0);
    assert!(stages[3]["spearman"].as_f64().unwrap() < 1.0);
    assert!(extras["flagged"].is_boolean());
    // Only the named method is randomised.
    assert!(!statuses(&m)
        .iter()
        .any(|(id, _)| id.contains("input_x_gradient/target1/randomisation")));

    // The same seed repeats the cascade.
    let again = write_config("run-randomisation-again", {
        let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        c["methods"] = json!([{"id": "captum.saliency", "params": {"abs": false}}]);
        c
    });
    assert!(run(&mut run_cmd(&again, &[])).0);
    let m2 = manifest(&again, "results.json");
    let last2 = job(&m2, "randomisation")["extras"]["stages"][3]["file"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(max_diff(&last, &load(Path::new(&last2))).0, 0.0);
}

#[test]
fn randomisation_names_methods_that_exist_and_make_maps() {
    let mut config = one_input(
        json!([{"id": "captum.saliency"}, {"id": "metrics.sparseness", "params": {"explained": {"method": "captum.saliency"}}}]),
        json!({}),
    );
    config["randomisation"] =
        json!({"methods": ["captum.salency", "metrics.sparseness"], "models": ["classifier"]});
    let stderr = fails(&mut run_cmd(
        &write_config("run-randomisation-bad", config),
        &[],
    ));
    for part in [
        "randomisation.methods[0]: no method is named `captum.salency`",
        "Did you mean `captum.saliency`?",
        "randomisation.methods[1]: `metrics.sparseness` (metrics.sparseness) makes no map",
        "randomisation.models[0]: no model is labelled `classifier`",
    ] {
        assert!(stderr.contains(part), "expected {part:?} in {stderr}");
    }
}

#[test]
fn metrics_are_checked_for_what_they_explain_and_masks_they_cannot_follow() {
    let roi = fixture("roi.npy");
    let config = json!({
        "model": {"path": fixture("segmenter3d.pt"), "task": "segmentation"},
        "inputs": [{"path": fixture("seg3d_x.npy"), "targets": [1]}],
        "preprocessing": {"crop": [6, 6, 6]},
        "methods": [
            {"id": "metrics.sparseness", "name": "a", "params": {"explained": {"method": "captum.salency"}}},
            {"id": "metrics.sparseness", "name": "b", "params": {"explained": {"method": "testkit.layer_stub"}}},
            {"id": "metrics.pointing_game", "params": {"explained": {"method": "captum.saliency"}, "mask": roi}},
            // No mask, and the input gives no ground truth.
            {"id": "metrics.relevance_mass_accuracy", "params": {"explained": {"method": "captum.saliency"}}}
        ],
        "output": {"folder": "out"}
    });
    let stderr = fails(&mut run_cmd(
        &write_config("run-metric-checks", config),
        &[],
    ));
    for part in [
        "methods[0].params.explained.method: unknown method `captum.salency`. Did you mean `captum.saliency`?",
        "methods[1].params.explained.method: `testkit.layer_stub` is a layerattribution method",
        "methods[2]: a metric with a ground-truth mask cannot run on cropped or resized inputs",
        "methods[3].params: \"mask\" is a required property",
    ] {
        assert!(stderr.contains(part), "expected {part:?} in {stderr}");
    }
}

#[test]
fn each_input_is_scored_against_its_own_ground_truth() {
    // Two inputs: the fixture volume against its ROI, and a copy of it (in another folder,
    // same stem) against an empty ground truth, which the metric refuses by name.
    let dir = scratch("run-ground-truth-data");
    for sub in ["a", "b"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::copy(fixture("seg3d_x.npy"), dir.join(sub).join("x.npy")).unwrap();
    }
    std::fs::copy(fixture("roi.npy"), dir.join("a/x_truth.npy")).unwrap();
    Tensor::zeros([8, 8, 8], (tch::Kind::Float, tch::Device::Cpu))
        .write_npy(dir.join("b/x_truth.npy"))
        .unwrap();
    let config = json!({
        "model": {"path": fixture("segmenter3d.pt"), "task": "segmentation"},
        "inputs": [
            {"path": dir.join("a/x.npy"), "targets": [1], "ground_truth": dir.join("a/{stem}_truth.npy")},
            // Relative to the config's folder, a sibling of the data's.
            {"path": dir.join("b/x.npy"), "targets": [1], "ground_truth": "../run-ground-truth-data/b/{stem}_truth.npy"}
        ],
        "methods": [{"id": "metrics.relevance_mass_accuracy", "params": {"explained": {"method": "captum.saliency"}}}],
        "output": {"folder": "out", "formats": ["npy"]}
    });
    let path = write_config("run-ground-truth", config);
    let out = run_cmd(&path, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let m = manifest(&path, "results.json");
    let a = job(&m, "x/segmenter3d/");
    assert_eq!(a["status"], "done", "{a}");
    let b = job(&m, "x-2/segmenter3d/");
    let error = b["error"].as_str().unwrap();
    assert!(
        error.contains("x_truth.npy") && error.contains("is empty"),
        "{error}"
    );
    // The mass on the ROI, recomputed from the saliency map.
    let saliency = scratch("run-ground-truth-saliency").join("s.npy");
    let mut cmd = explain_cmd("segmenter3d.pt", "seg3d_x.npy", "captum.saliency");
    cmd.args(["--task", "segmentation", "--target", "1", "--out"])
        .arg(&saliency);
    assert!(run(&mut cmd).0);
    let map = load(&saliency)
        .sum_dim_intlist(1, false, tch::Kind::Double)
        .squeeze();
    let roi = load(&fixture("roi.npy")).to_kind(tch::Kind::Double);
    let expected = (&map * &roi).sum(tch::Kind::Double).double_value(&[])
        / map.sum(tch::Kind::Double).double_value(&[]);
    let score = load(Path::new(a["files"][0].as_str().unwrap())).double_value(&[0]);
    assert!(
        (score - expected).abs() <= 1e-5,
        "{score} vs {expected} (1e-5 absolute)"
    );
}

/// A format that cannot show a map never fails its job: a batch of two gets its npy and a PNG
/// per example, and the NIfTI a 2D batch cannot be is skipped with a warning in the record.
#[test]
fn a_batch_keeps_its_npy_gets_a_png_per_example_and_a_warning_for_the_nifti() {
    let config = write_config(
        "batch-outputs",
        json!({
            "model": {"path": fixture("classifier2d.pt")},
            "inputs": [{"path": fixture("classifier2d_x2.npy"), "targets": [1]}],
            "methods": [{"id": "captum.saliency"}],
            "output": {"folder": "out", "formats": ["png", "nii.gz", "npy"], "png_channels": "max-abs"}
        }),
    );
    let (ok, _, stderr) = run(&mut run_cmd(&config, &[]));
    assert!(ok, "{stderr}");
    let m = manifest(&config, "results.json");
    let j = job(&m, "captum.saliency");
    assert_eq!(j["status"], "done", "{j}");
    let files: Vec<&str> = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files[0].ends_with("saliency_target1.npy"),
        "npy first: {files:?}"
    );
    assert!(files[1].ends_with("saliency_target1_b0.png"), "{files:?}");
    assert!(files[2].ends_with("saliency_target1_b1.png"), "{files:?}");
    assert!(files.iter().all(|f| Path::new(f).is_file()), "{files:?}");
    assert_eq!(load(Path::new(files[0])).size(), [2, 3, 8, 8]);
    let warnings = j["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{j}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.starts_with("no nii.gz written") && w.contains("[2, 3, 8, 8]"),
        "{w}"
    );
}

/// A layer's 4x4 Grad-CAM is drawn over the 8x8 input: resampled (so its 64-pixel blocks are
/// no longer flat) and captioned under the picture (so the PNG is taller than its panel).
#[test]
fn a_layer_grid_png_is_upsampled_over_the_input_and_captioned() {
    let config = write_config(
        "layer-png",
        json!({
            "model": {"path": fixture("layers/classifier2d.onnx")},
            "inputs": [{"path": fixture("layers/c2d_x.npy"), "targets": [1]}],
            "methods": [{"id": "captum.layer_grad_cam", "layer": "conv2"}],
            "output": {"folder": "out", "formats": ["npy", "png"]}
        }),
    );
    let (ok, _, stderr) = run(&mut run_cmd(&config, &[]));
    assert!(ok, "{stderr}");
    let m = manifest(&config, "results.json");
    let j = job(&m, "layer_grad_cam");
    assert_eq!(j["status"], "done", "{j}");
    let png = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .find(|f| f.ends_with(".png"))
        .unwrap();
    assert_eq!(
        load(Path::new(png.replace(".png", ".npy").as_str())).size(),
        [1, 1, 4, 4]
    );
    let img = image::open(png).unwrap().to_rgb8();
    // 8x8 input pixels drawn 32 screen pixels each, a caption line under them.
    assert!(img.height() > 256, "no caption: {:?}", img.dimensions());
    let (a, b) = (img.get_pixel(16, 16), img.get_pixel(48, 16));
    assert_ne!(
        a, b,
        "one 4x4 cell spans two input pixels, which differ when resampled"
    );
}
