//! `esegeta explain` end to end: inputs in every format load as the model expects, and maps are
//! written as npy, NIfTI on the source's grid, and PNG heatmaps.

mod common;

use std::path::Path;

use common::*;
use esegeta::io::load_input;
use tch::Tensor;

fn same(a: &Tensor, b: &Tensor) {
    let (diff, _) = max_diff(a, b);
    assert_eq!(diff, 0.0);
}

#[test]
fn nifti_loads_channel_first_in_voxel_index_order_like_nibabel() {
    let input = load_input(&fixture("vol.nii.gz")).unwrap();
    assert_eq!(input.tensor.size(), vec![1, 1, 8, 6, 4]);
    same(&input.tensor, &load(&fixture("vol.npy")));
    assert!(input.nifti.is_some());
}

#[test]
fn images_load_as_batch_channel_height_width_in_unit_range() {
    same(
        &load_input(&fixture("rgb.png")).unwrap().tensor,
        &load(&fixture("rgb.npy")),
    );
    same(
        &load_input(&fixture("gray.png")).unwrap().tensor,
        &load(&fixture("gray.npy")),
    );
}

/// A version 1.0 `.npy` with the given dtype, memory order, shape and raw data.
fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let order = if fortran { "True" } else { "False" };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {order}, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn npy_of_any_numeric_dtype_and_order_becomes_float32() {
    let dir = scratch("npy-dtypes");
    let expected = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]);
    let big_endian_i16: Vec<u8> = [1i16, 2, 3, 4, 5, 6]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let u16s: Vec<u8> = [1u16, 2, 3, 4, 5, 6]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    // Fortran order: columns first.
    let fortran_f64: Vec<u8> = [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let u8s = vec![1u8, 2, 3, 4, 5, 6];
    for (name, bytes) in [
        ("i16be.npy", npy(">i2", false, &[2, 3], &big_endian_i16)),
        ("u16.npy", npy("<u2", false, &[2, 3], &u16s)),
        ("f64f.npy", npy("<f8", true, &[2, 3], &fortran_f64)),
        ("u8.npy", npy("|u1", false, &[2, 3], &u8s)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let t = load(&path);
        assert_eq!(t.kind(), tch::Kind::Float, "{name}");
        same(&t, &expected);
    }
}

fn explain_to(out: &Path, model: &str, input: &str, extra: &[&str]) -> String {
    let mut cmd = explain_cmd(model, input, "captum.saliency");
    cmd.args(extra).arg("--out").arg(out);
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    stdout
}

#[test]
fn nifti_maps_keep_the_source_affine_and_match_the_npy_map() {
    let dir = scratch("nifti-out");
    let seg = [
        "--task",
        "segmentation",
        "--wrapper",
        "argmax",
        "--target",
        "1",
    ];
    explain_to(
        &dir.join("map.nii.gz"),
        "segmenter3d.pt",
        "vol.nii.gz",
        &seg,
    );
    explain_to(&dir.join("map.npy"), "segmenter3d.pt", "vol.nii.gz", &seg);
    let written = load_input(&dir.join("map.nii.gz")).unwrap();
    same(&written.tensor, &load(&dir.join("map.npy")));
    let header = written.nifti.unwrap();
    let source = load_input(&fixture("vol.nii.gz")).unwrap().nifti.unwrap();
    assert_eq!(
        (header.srow_x, header.srow_y, header.srow_z),
        (source.srow_x, source.srow_y, source.srow_z)
    );
    assert_eq!(
        (header.sform_code, header.qform_code),
        (source.sform_code, source.qform_code)
    );
    assert_eq!(&header.pixdim[1..4], &source.pixdim[1..4]);
    let affine = load(&fixture("vol_affine.npy"));
    let rows =
        Tensor::from_slice(&[header.srow_x, header.srow_y, header.srow_z].concat()).view([3, 4]);
    let (diff, _) = max_diff(
        &rows.to_kind(tch::Kind::Double),
        &affine.narrow(0, 0, 3).to_kind(tch::Kind::Double),
    );
    assert!(diff < 1e-6, "affine differs by {diff}");
}

#[test]
fn png_maps_are_heatmaps_over_the_input_with_a_colour_bar() {
    let out = scratch("png-out").join("map.png");
    let stdout = explain_to(&out, "classifier2d.pt", "rgb.png", &["--target", "1"]);
    assert!(stdout.contains("wrote"), "{stdout}");
    let img = image::open(&out).unwrap().to_rgb8();
    // 8x8 input scaled x32, then a gap, the colour bar and its labels; under them the caption
    // line saying the map's 3 channels were summed.
    assert_eq!(img.dimensions(), (256 + 8 + 16 + 4 + 72, 256 + 6 + 10));
    let top = img.get_pixel(256 + 8 + 8, 0);
    let bottom = img.get_pixel(256 + 8 + 8, 255);
    assert_ne!(
        top, bottom,
        "the colour bar runs from the maximum to the minimum"
    );
}

#[test]
fn sampling_methods_repeat_with_the_same_seed() {
    let dir = scratch("seeds");
    let params = r#"{"noise_tunnel": {"nt_type": "smoothgrad", "nt_samples": 4, "stdevs": 0.2}}"#;
    for (name, seed) in [("a.npy", "7"), ("b.npy", "7"), ("c.npy", "8")] {
        let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
        cmd.args(["--params", params, "--seed", seed, "--out"])
            .arg(dir.join(name));
        let (ok, _, stderr) = run(&mut cmd);
        assert!(ok, "{stderr}");
    }
    same(&load(&dir.join("a.npy")), &load(&dir.join("b.npy")));
    let (diff, _) = max_diff(&load(&dir.join("a.npy")), &load(&dir.join("c.npy")));
    assert!(diff > 0.0, "another seed draws other noise");
}

/// The JSON of the `timing: ` line of an `esegeta explain --timing` run with `args`.
fn timing_of(out: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
    cmd.args(args).arg("--timing").arg("--out").arg(out);
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("timing: "))
        .unwrap_or_else(|| panic!("no timing line in {stdout}"));
    serde_json::from_str(line).unwrap()
}

/// `--timing` prints one JSON line that benchmarks parse: the method's own wall time, the peak
/// resident memory, and the thread count `--threads` set (values not judged: no timing test).
/// `--repeat N` adds the warm runs' median and writes the same map.
#[test]
fn timing_reports_the_method_time_memory_and_threads() {
    let dir = scratch("timing");
    let (once, repeated) = (dir.join("once.npy"), dir.join("repeated.npy"));
    let timing = timing_of(&once, &["--threads", "1"]);
    assert!(timing["method_s"].as_f64().unwrap() > 0.0, "{timing}");
    assert!(timing["peak_rss_mib"].as_f64().unwrap() > 0.0, "{timing}");
    assert_eq!(timing["threads"], 1, "{timing}");
    assert!(
        timing.get("warm_s").is_none(),
        "one run has no warm time: {timing}"
    );
    let timing = timing_of(&repeated, &["--repeat", "3"]);
    assert!(timing["warm_s"].as_f64().unwrap() > 0.0, "{timing}");
    same(&load(&once), &load(&repeated));
    let mut bad = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
    bad.args(["--threads", "0", "--out"]).arg(&once);
    assert!(fails(&mut bad).contains("--threads must be at least 1"));
    let mut bad = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
    bad.args(["--repeat", "0", "--out"]).arg(&once);
    assert!(fails(&mut bad).contains("--repeat"));
}

/// A PNG draws one example and one plane: a batch gets one PNG per example, named on stdout,
/// and `--png-channels each` one per channel; the npy of the same map is one file.
#[test]
fn a_batch_gets_one_png_per_example_and_each_channel_its_own() {
    let dir = scratch("batch-png");
    let out = dir.join("map.png");
    let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x2.npy", "captum.saliency");
    cmd.args(["--target", "1", "--out"]).arg(&out);
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    let (b0, b1) = (dir.join("map_b0.png"), dir.join("map_b1.png"));
    assert!(b0.is_file() && b1.is_file() && !out.exists(), "{stdout}");
    assert!(
        stdout.contains(&b0.display().to_string()) && stdout.contains(&b1.display().to_string()),
        "{stdout}"
    );
    assert!(stdout.contains("one PNG per example"), "{stdout}");
    let first = image::open(&b0).unwrap().to_rgb8();
    assert_ne!(
        first,
        image::open(&b1).unwrap().to_rgb8(),
        "two examples, two maps"
    );

    let out = dir.join("each.png");
    let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
    cmd.args(["--png-channels", "each", "--out"]).arg(&out);
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    for c in 0..3 {
        assert!(dir.join(format!("each_c{c}.png")).is_file(), "{stdout}");
    }
    let mut bad = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
    bad.args(["--png-channels", "mean", "--out"]).arg(&out);
    let e = fails(&mut bad);
    assert!(e.contains("max-abs") && e.contains("each"), "{e}");
}

/// `esegeta explain` of saliency (signed) on `input` with `extra` flags; the map.
fn saliency(dir: &Path, name: &str, input: &str, extra: &[&str]) -> Tensor {
    let out = dir.join(name);
    let mut args = vec!["--params", r#"{"abs": false}"#, "--target", "1"];
    args.extend_from_slice(extra);
    explain_to(&out, "classifier2d.pt", input, &args);
    load(&out)
}

#[test]
fn crop_and_normalise_flags_give_the_runs_map_on_the_inputs_grid() {
    let dir = scratch("explain-crop");
    let map = saliency(
        &dir,
        "map.npy",
        "classifier2d_x.npy",
        &["--crop", "6,6", "--normalize", "minmax"],
    );
    assert_eq!(map.size(), vec![1, 3, 8, 8], "on the input's grid");
    assert_eq!(
        map.narrow(3, 7, 1).abs().max().double_value(&[]),
        0.0,
        "zero where the crop cut"
    );
    // By hand: the centre 6x6, min-max normalised, explained as is.
    let x = load(&fixture("classifier2d_x.npy"))
        .narrow(2, 1, 6)
        .narrow(3, 1, 6);
    let x = (&x - x.min()) / (x.max() - x.min());
    let prepared = dir.join("prepared.npy");
    x.write_npy(&prepared).unwrap();
    let single = saliency(&dir, "single.npy", prepared.to_str().unwrap(), &[]);
    let (diff, scale) = max_diff(&map.narrow(2, 1, 6).narrow(3, 1, 6), &single);
    // Same arithmetic in the same order: float rounding only.
    assert!(diff <= 1e-6 * scale, "{diff} of {scale}");
}

#[test]
fn a_resized_input_is_explained_and_its_map_resized_back() {
    let dir = scratch("explain-resize");
    let map = saliency(
        &dir,
        "map.npy",
        "classifier2d_x.npy",
        &["--resize", "16,16"],
    );
    assert_eq!(map.size(), vec![1, 3, 8, 8]);
    // By hand with libtorch's bilinear resize (corners not aligned, as MONAI's Resize).
    let x = load(&fixture("classifier2d_x.npy")).upsample_bilinear2d([16, 16], false, None, None);
    let prepared = dir.join("prepared.npy");
    x.write_npy(&prepared).unwrap();
    let single = saliency(&dir, "single.npy", prepared.to_str().unwrap(), &[]).upsample_bilinear2d(
        [8, 8],
        false,
        None,
        None,
    );
    let (diff, scale) = max_diff(&map, &single);
    assert!(diff <= 1e-6 * scale, "{diff} of {scale}");
}

#[test]
fn a_patch_covering_the_input_gives_the_unpatched_map_and_smaller_ones_cover_it() {
    let dir = scratch("explain-patch");
    let whole = saliency(&dir, "whole.npy", "classifier2d_x.npy", &[]);
    let one = saliency(&dir, "one.npy", "classifier2d_x.npy", &["--patch", "8"]);
    let (diff, scale) = max_diff(&one, &whole);
    // One window of the whole input, blended with itself: float rounding only.
    assert!(diff <= 1e-6 * scale, "{diff} of {scale}");
    let tiles = saliency(
        &dir,
        "tiles.npy",
        "classifier2d_x.npy",
        &["--patch", "4x4,0.5"],
    );
    assert_eq!(tiles.size(), vec![1, 3, 8, 8]);
    let (diff, _) = max_diff(&tiles, &whole);
    assert!(diff > 0.0, "windows see less context than the whole input");
}

#[test]
fn several_outs_write_every_format_and_one_bad_extension_writes_none() {
    let dir = scratch("explain-outs");
    let (npy, png) = (dir.join("map.npy"), dir.join("map.png"));
    let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
    cmd.arg("--out").arg(&npy).arg("--out").arg(&png);
    let (ok, stdout, stderr) = run(&mut cmd);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("wrote").count(), 2, "{stdout}");
    assert_eq!(load(&npy).size(), vec![1, 3, 8, 8]);
    assert!(image::open(&png).is_ok());
    let (good, bad) = (dir.join("again.npy"), dir.join("map.tiff"));
    let mut cmd = explain_cmd("classifier2d.pt", "classifier2d_x.npy", "captum.saliency");
    cmd.arg("--out").arg(&good).arg("--out").arg(&bad);
    assert!(fails(&mut cmd).contains("unknown output format `.tiff`"));
    assert!(!good.exists(), "refused before any work");
}

#[test]
fn a_wrapper_implies_segmentation() {
    let dir = scratch("explain-wrapper-task");
    let (implied, explicit) = (dir.join("implied.npy"), dir.join("explicit.npy"));
    let wrapper = ["--wrapper", "argmax", "--target", "1"];
    explain_to(&implied, "segmenter3d.pt", "vol.nii.gz", &wrapper);
    let mut explicit_args = wrapper.to_vec();
    explicit_args.extend(["--task", "segmentation"]);
    explain_to(&explicit, "segmenter3d.pt", "vol.nii.gz", &explicit_args);
    same(&load(&implied), &load(&explicit));
}
