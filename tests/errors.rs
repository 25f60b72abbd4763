//! Bad input gets a clear error that says what was wrong, where, and what to do; nothing
//! panics (`common::run` fails a test on a panic or a signal) and the exit code is non-zero.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

fn explain(model: &Path, input: &Path, method: &str, extra: &[&str]) -> String {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let out =
        scratch(&format!("errors-{}", CALLS.fetch_add(1, Ordering::Relaxed))).join("never.npy");
    let mut cmd = esegeta();
    cmd.arg("explain")
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(input);
    cmd.args(["--method", method])
        .args(extra)
        .arg("--out")
        .arg(&out);
    let stderr = fails(&mut cmd);
    assert!(!out.exists(), "nothing is written on failure");
    stderr
}

fn ok_model() -> PathBuf {
    fixture("classifier2d.pt")
}

fn ok_input() -> PathBuf {
    fixture("classifier2d_x.npy")
}

fn file_with(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch(&format!("errors-file-{name}")).join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn assert_contains(stderr: &str, parts: &[&str]) {
    for part in parts {
        assert!(stderr.contains(part), "expected {part:?} in:\n{stderr}");
    }
}

#[test]
fn missing_files_are_named() {
    let e = explain(
        Path::new("/no/such/model.pt"),
        &ok_input(),
        "captum.saliency",
        &[],
    );
    assert_contains(&e, &["/no/such/model.pt does not exist", "--model"]);
    let e = explain(
        &ok_model(),
        Path::new("/no/such/input.npy"),
        "captum.saliency",
        &[],
    );
    assert_contains(&e, &["/no/such/input.npy does not exist"]);
}

#[test]
fn corrupt_files_say_what_they_are_not() {
    let e = explain(
        &ok_model(),
        &file_with("x.npy", b"not an npy"),
        "captum.saliency",
        &[],
    );
    assert_contains(&e, &["x.npy is not a valid .npy file"]);
    let e = explain(
        &ok_model(),
        &file_with("x.nii.gz", b"not a nifti"),
        "captum.saliency",
        &[],
    );
    assert_contains(&e, &["x.nii.gz is not a valid NIfTI file"]);
    let e = explain(
        &file_with("m.pt", b"not torchscript"),
        &ok_input(),
        "captum.saliency",
        &[],
    );
    assert_contains(&e, &["m.pt is not a TorchScript model", "torch.jit.trace"]);
    let mut truncated = std::fs::read(ok_input()).unwrap();
    truncated.truncate(truncated.len() - 10);
    let e = explain(
        &ok_model(),
        &file_with("t.npy", &truncated),
        "captum.saliency",
        &[],
    );
    assert_contains(&e, &["t.npy is not a valid .npy file"]);
}

#[test]
fn an_input_shape_the_model_rejects_quotes_the_models_error() {
    let e = explain(&ok_model(), &fixture("seg3d_x.npy"), "captum.saliency", &[]);
    assert_contains(
        &e,
        &[
            "rejected an input of shape [1, 1, 8, 8, 8]",
            "Expected 4-dimensional input",
        ],
    );
}

#[test]
fn a_target_outside_the_score_columns_gives_the_range() {
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--target", "3"],
    );
    assert_contains(
        &e,
        &["target 3 is outside the score columns", "between 0 and 2"],
    );
}

#[test]
fn an_unknown_method_suggests_the_nearest_ids() {
    let e = explain(&ok_model(), &ok_input(), "captum.integrated_gradient", &[]);
    assert_contains(
        &e,
        &[
            "unknown method `captum.integrated_gradient`",
            "Did you mean `captum.integrated_gradients`?",
        ],
    );
}

#[test]
fn bad_parameters_are_named_with_the_schemas_rule_all_at_once() {
    let params = r#"{"n_steps": "fifty", "n_step": 3, "method": "riemann"}"#;
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.integrated_gradients",
        &["--params", params],
    );
    assert_contains(
        &e,
        &[
            r#"params.n_steps: "fifty" is not of type "integer""#,
            r#""minimum":1"#,
            "params.n_step: unknown parameter. Did you mean `n_steps`?",
            r#"params.method: "riemann" is not one of"#,
        ],
    );
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.integrated_gradients",
        &["--params", r#"{"n_steps": 0}"#],
    );
    assert_contains(&e, &["params.n_steps: 0 is less than the minimum of 1"]);
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--params", "{abs: true"],
    );
    assert_contains(&e, &["--params is not valid JSON"]);
}

#[test]
fn errors_inside_an_optional_group_of_parameters_are_named() {
    let params = r#"{"noise_tunnel": {"nt_tpe": "smoothgrad", "nt_samples": 0}}"#;
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--params", params],
    );
    assert_contains(
        &e,
        &[
            "params.noise_tunnel.nt_samples: 0 is less than the minimum of 1",
            "params.noise_tunnel.nt_tpe: unknown parameter. Did you mean `nt_type`?",
        ],
    );
}

#[test]
fn nan_or_infinite_inputs_are_refused() {
    // A copy of the fixture input with one NaN: npy header then float32 data.
    let mut bytes = std::fs::read(ok_input()).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = explain(
        &ok_model(),
        &file_with("nan.npy", &bytes),
        "captum.saliency",
        &[],
    );
    assert_contains(&e, &["nan.npy holds 1 NaN or infinite value(s)"]);
}

#[test]
fn a_device_this_machine_lacks_is_refused() {
    let count = tch::Cuda::device_count();
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--device", &format!("cuda:{count}")],
    );
    assert_contains(&e, &["is not available", "CUDA device(s)"]);
}

#[test]
fn methods_that_need_layers_on_torchscript_and_wrong_wrappers_explain_the_fix() {
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--layer", "conv1"],
    );
    assert_contains(&e, &["captum.saliency is not a layer method; drop --layer"]);
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--task", "segmentation"],
    );
    assert_contains(
        &e,
        &["not [batch, channels, ...spatial]", "--task classification"],
    );
    let seg = fixture("segmenter3d.pt");
    let e = explain(
        &seg,
        &fixture("seg3d_x.npy"),
        "captum.saliency",
        &["--task", "segmentation", "--wrapper", "threshold"],
    );
    assert_contains(
        &e,
        &[
            "threshold wrapper needs one foreground channel",
            "--wrapper argmax",
        ],
    );
    let e = explain(
        &seg,
        &fixture("seg3d_x.npy"),
        "captum.saliency",
        &["--task", "segmentation", "--wrapper", "mask"],
    );
    assert_contains(&e, &["needs a region: pass --mask FILE"]);
}

#[test]
fn an_unknown_output_format_is_refused_before_any_work() {
    let out = scratch("errors-format").join("map.tiff");
    let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
    let e = fails(cmd.arg("--out").arg(&out));
    assert_contains(
        &e,
        &["unknown output format `.tiff`", ".npy, .nii.gz or .png"],
    );
}

#[test]
fn a_fixed_size_onnx_names_the_flags_and_keys_that_fit_an_input_to_it() {
    // The graph takes [B, 3, 8, 8]; this input is 16x16.
    let input = scratch("errors-fixed-size").join("x16.npy");
    tch::Tensor::rand([1, 3, 16, 16], (tch::Kind::Float, tch::Device::Cpu))
        .write_npy(&input)
        .unwrap();
    let model = fixture("onnx/classifier2d.onnx");
    let e = explain(&model, &input, "captum.saliency", &[]);
    assert_contains(
        &e,
        &[
            "expects an input of shape [B, 3, 8, 8]",
            "--resize",
            "--patch",
            "preprocessing.resize",
            "execution.patching",
        ],
    );
    // What it says works: the map comes back on the input's 16x16 grid.
    let out = scratch("errors-fixed-size-resized").join("map.npy");
    let mut cmd = esegeta();
    cmd.arg("explain")
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .args(["--method", "captum.saliency", "--resize", "8,8", "--out"])
        .arg(&out);
    let (ok, _, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    assert_eq!(load(&out).size(), vec![1, 3, 16, 16]);
}

#[test]
fn a_layer_method_without_a_layer_says_how_to_give_one() {
    let e = explain(&ok_model(), &ok_input(), "captum.layer_activation", &[]);
    assert_contains(
        &e,
        &[
            "\"layer\" is a required property",
            "--layer NAME",
            "esegeta layers MODEL",
        ],
    );
}

#[test]
fn bad_preprocessing_and_patch_flags_are_named_with_an_example() {
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--resize", "8,0"],
    );
    assert_contains(&e, &["--resize", "e.g. 224,224"]);
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--patch", "4x4,2"],
    );
    assert_contains(&e, &["--patch", "less than 1"]);
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--patch", "4x4x4"],
    );
    assert_contains(
        &e,
        &["--patch gives 3 window sizes", "2 spatial dimensions"],
    );
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--mean", "0.5", "--std", "0.2"],
    );
    assert_contains(
        &e,
        &[
            "--mean has 1 value(s)",
            "has 3 channel(s)",
            "one mean per channel",
        ],
    );
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--mean", "0,0,0", "--std", "1,0,1"],
    );
    assert_contains(&e, &["--std[1] is 0", "> 0"]);
    let e = explain(
        &ok_model(),
        &ok_input(),
        "captum.saliency",
        &["--crop", "9,9"],
    );
    assert_contains(&e, &["--crop [9, 9] is larger than"]);
}

#[test]
fn logs_off_a_terminal_carry_no_colour_codes() {
    // Occlusion logs its incremental evaluation at debug level.
    let stderr = occlusion_log(
        "incremental/resnet_like.onnx",
        "incremental/resnet_like_x.npy",
        r#"{"sliding_window_shapes": [3, 8, 8], "strides": [3, 8, 8]}"#,
        &["--target", "2"],
    );
    assert!(
        stderr.contains("DEBUG"),
        "debug logging writes something:\n{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "colour codes in:\n{stderr}");
}

/// `esegeta methods | head -1`: the reader goes away before esegeta writes. The process ends
/// as `cat` would (killed by SIGPIPE, 141 in a shell) or succeeds, without an error message.
#[test]
fn closing_stdout_early_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["methods"][..], &["schema", "captum.saliency"][..]] {
        let mut child = esegeta()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}, {stderr}",
            out.status
        );
        for noise in ["Broken pipe", "error", "panicked"] {
            assert!(!stderr.contains(noise), "{args:?}: {stderr}");
        }
    }
}
