//! ONNX import and execution against PyTorch: every fixture model of
//! tools/make_onnx_fixtures.py, forward (dynamic and fixed batch, every output), layer names,
//! layer taps, input gradients, `esegeta layers` and `explain`, and the load errors.

mod common;

use std::path::PathBuf;

use anyhow::Result;
use common::*;
use esegeta::model::graph::{GraphModel, NodeHook, NodeView};
use esegeta::model::{self, Model, OnnxModel};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

fn onnx_dir() -> PathBuf {
    fixture("onnx")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(onnx_dir().join("manifest.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["models"].as_array().unwrap().clone()
}

fn entry(name: &str) -> Value {
    manifest()
        .into_iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no model {name} in the manifest"))
}

fn load_model(file: &str, output_index: usize) -> Box<dyn Model> {
    model::load(
        &onnx_dir().join(file),
        Device::Cpu,
        Kind::Float,
        output_index,
    )
    .unwrap_or_else(|e| panic!("{file}: {e:#}"))
}

fn npy(name: &str) -> Tensor {
    load(&onnx_dir().join(name))
}

/// Forward equals PyTorch's: max|ours - torch| <= 1e-5 * max|torch| + 1e-6.
fn assert_close(ours: &Tensor, torch: &Tensor, what: &str) {
    let (diff, scale) = max_diff(ours, torch);
    assert!(
        diff <= 1e-5 * scale + 1e-6,
        "{what}: max|ours - torch| = {diff:e}, max|torch| = {scale:e}"
    );
}

/// Every input (B=1 and B=3) and every output index of one fixture model.
fn check_forward(name: &str) {
    let entry = entry(name);
    let outputs = entry["cases"][0]["outputs"].as_array().unwrap().len();
    for index in 0..outputs {
        let model = load_model(entry["model"].as_str().unwrap(), index);
        for case in entry["cases"].as_array().unwrap() {
            let x = npy(case["input"].as_str().unwrap());
            let expected = npy(case["outputs"][index].as_str().unwrap());
            let ours = tch::no_grad(|| model.forward(&x)).unwrap_or_else(|e| panic!("{e:#}"));
            let label = entry["output_names"][index].as_str().unwrap_or("");
            assert_close(
                &ours,
                &expected,
                &format!("{name} output {index} {label}, input {}", case["input"]),
            );
        }
    }
}

#[test]
fn forward_classifier2d() {
    check_forward("classifier2d");
}

#[test]
fn forward_fixed_batch_is_chunked() {
    let model = load_model("classifier2d_fixed_b2.onnx", 0);
    assert_eq!(model.graph().unwrap().fixed_batch(), Some(2));
    check_forward("classifier2d_fixed_b2");
}

#[test]
fn forward_segmenter3d() {
    check_forward("segmenter3d");
}

#[test]
fn forward_resnet_like() {
    check_forward("resnet_like");
}

#[test]
fn forward_resnet_like_unoptimized() {
    check_forward("resnet_like_unoptimized");
}

#[test]
fn forward_unet3d_nearest_batch_norm() {
    check_forward("unet3d_nearest");
}

#[test]
fn forward_unet3d_strided_instance_norm() {
    check_forward("unet3d_strided");
}

#[test]
fn forward_deep_supervision_every_output() {
    check_forward("deep_supervision");
}

#[test]
fn forward_less_common_ops() {
    check_forward("less_common");
}

/// Op forms the exporter does not write, against ONNX's reference evaluator (one output per
/// form; the failing output's name is in the message).
#[test]
fn forward_spec_forms_opset20() {
    check_forward("spec_opset20");
}

#[test]
fn forward_spec_forms_opset9() {
    check_forward("spec_opset9");
}

#[test]
fn every_fixture_model_is_tested() {
    let tested = [
        "classifier2d",
        "classifier2d_fixed_b2",
        "segmenter3d",
        "resnet_like",
        "resnet_like_unoptimized",
        "unet3d_nearest",
        "unet3d_strided",
        "deep_supervision",
        "less_common",
        "spec_opset20",
        "spec_opset9",
    ];
    for m in manifest() {
        assert!(
            tested.contains(&m["name"].as_str().unwrap()),
            "untested fixture {}",
            m["name"]
        );
    }
}

#[test]
fn output_index_out_of_range_is_an_error() {
    let path = onnx_dir().join("deep_supervision.onnx");
    let err = model::load(&path, Device::Cpu, Kind::Float, 3)
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("has no output 3: its 3 output(s) are 0: `conv3d_12`")
            && msg.contains("--output-index N"),
        "{msg}"
    );
}

#[test]
fn layer_names_are_pytorch_module_paths() {
    for m in manifest() {
        let model = load_model(m["model"].as_str().unwrap(), 0);
        let expected: Vec<String> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(model.layers().unwrap(), expected, "{}", m["name"]);
    }
}

#[test]
fn a_block_answers_with_its_last_node() {
    let model = OnnxModel::load(
        &onnx_dir().join("resnet_like.onnx"),
        Device::Cpu,
        Kind::Float,
        0,
    )
    .unwrap();
    let block = model.layer("layer2.0").unwrap();
    let last_relu = model.layer("layer2.0.relu").unwrap();
    assert_eq!(block.node, last_relu.node);
    assert_eq!(block.op_type, "Relu");
    // The fused conv + batch norm answers to one of the two modules.
    assert_eq!(model.layer("layer2.0.bn1").unwrap().op_type, "Conv");
}

#[test]
fn unknown_layer_suggests_the_nearest() {
    let model = OnnxModel::load(
        &onnx_dir().join("resnet_like.onnx"),
        Device::Cpu,
        Kind::Float,
        0,
    )
    .unwrap();
    let msg = format!("{:#}", model.layer("layer2.0.bn").err().unwrap());
    assert!(
        msg.contains("no layer `layer2.0.bn`") && msg.contains("Did you mean"),
        "{msg}"
    );
    assert!(
        msg.contains("`layer2.0.bn1`") || msg.contains("`layer2.0.bn2`"),
        "{msg}"
    );
}

/// Replaces the output of one node with zeros.
struct ZeroNode(usize);

impl NodeHook for ZeroNode {
    fn after_node(
        &mut self,
        node: &NodeView<'_>,
        _inputs: &[Option<Tensor>],
        mut outputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        if node.index == self.0 {
            outputs[0] = outputs[0].zeros_like();
        }
        Ok(outputs)
    }
}

#[test]
fn a_replaced_layer_output_changes_the_output_as_a_pytorch_hook_does() {
    let mut checked = 0;
    for m in manifest() {
        let Some(hook) = m.get("zero_hook") else {
            continue;
        };
        let path = onnx_dir().join(m["model"].as_str().unwrap());
        let model = OnnxModel::load(&path, Device::Cpu, Kind::Float, 0).unwrap();
        let layer = model.layer(hook["layer"].as_str().unwrap()).unwrap();
        let x = npy(hook["input"].as_str().unwrap());
        let graph = model.graph().unwrap();
        let ours = tch::no_grad(|| graph.forward_hooked(&x, &mut ZeroNode(layer.node))).unwrap();
        let expected = npy(hook["output"].as_str().unwrap());
        assert_close(
            &ours,
            &expected,
            &format!("{} with {} zeroed", m["name"], hook["layer"]),
        );
        let plain = tch::no_grad(|| model.forward(&x)).unwrap();
        assert!(
            max_diff(&plain, &expected).0 > 1e-3,
            "zeroing {} changed nothing",
            hook["layer"]
        );
        checked += 1;
    }
    assert!(checked >= 4);
}

/// Gradients w.r.t. the input through the tch ops equal PyTorch's autograd:
/// max|ours - torch| <= 1e-5 * max|torch| + 1e-6.
#[test]
fn input_gradients_equal_pytorch() {
    let mut checked = 0;
    for m in manifest() {
        let Some(g) = m.get("gradient") else { continue };
        let model = load_model(m["model"].as_str().unwrap(), 0);
        let x = npy(g["input"].as_str().unwrap()).set_requires_grad(true);
        let out = model.forward(&x).unwrap();
        let score = (out * npy(g["weights"].as_str().unwrap())).sum(Kind::Float);
        let grad = Tensor::run_backward(&[score], &[&x], false, false).remove(0);
        assert_close(
            &grad,
            &npy(g["gradient"].as_str().unwrap()),
            &format!("{} gradient", m["name"]),
        );
        checked += 1;
    }
    assert!(checked >= 4);
}

#[test]
fn parameters_are_the_state_dict_names_and_share_storage() {
    let model = load_model("classifier2d.onnx", 0);
    let params = model.parameters().unwrap();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let x = npy("classifier2d_x1.npy");
    let before = tch::no_grad(|| model.forward(&x)).unwrap();
    let (_, fc_bias) = params.iter().find(|(n, _)| n == "fc.bias").unwrap();
    let mut fc_bias = fc_bias.shallow_clone();
    tch::no_grad(|| {
        let _ = fc_bias.f_add_(&Tensor::from(1.0f32)).unwrap();
    });
    let after = tch::no_grad(|| model.forward(&x)).unwrap();
    let shift = (after - before).mean(Kind::Float).double_value(&[]);
    assert!(
        (shift - 1.0).abs() < 1e-5,
        "changing fc.bias in place moved the output by {shift}"
    );
}

/// What a hook sees: weights, biases and shape tensors are marked constant, values computed
/// from the input are not; initializers never require gradients.
#[test]
fn hooks_see_which_inputs_are_constants() {
    struct Record(Vec<(String, Vec<bool>)>);
    impl NodeHook for Record {
        fn before_node(
            &mut self,
            node: &NodeView<'_>,
            inputs: Vec<Option<Tensor>>,
        ) -> Result<Vec<Option<Tensor>>> {
            self.0
                .push((node.op_type.to_string(), node.input_is_constant.to_vec()));
            Ok(inputs)
        }
    }
    let model = load_model("classifier2d.onnx", 0);
    let mut record = Record(Vec::new());
    let x = npy("classifier2d_x1.npy");
    let _out = tch::no_grad(|| model.graph().unwrap().forward_hooked(&x, &mut record)).unwrap();
    let seen: Vec<(&str, Vec<bool>)> = record
        .0
        .iter()
        .map(|(op, c)| (op.as_str(), c.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("Conv", vec![false, true, true]),
            ("Relu", vec![false]),
            ("MaxPool", vec![false]),
            ("Conv", vec![false, true, true]),
            ("Relu", vec![false]),
            ("ReduceMean", vec![false, true]),
            ("Reshape", vec![false, true]),
            ("Gemm", vec![false, true, true]),
        ]
    );
    assert!(model
        .parameters()
        .unwrap()
        .iter()
        .all(|(_, p)| !p.requires_grad()));
}

/// Batch norms' running statistics are buffers, not parameters: cascading randomisation
/// re-initialises parameters, and a re-initialised variance could be negative.
#[test]
fn parameters_leave_out_batch_norm_statistics() {
    let model = load_model("resnet_like_unoptimized.onnx", 0);
    let names: Vec<String> = model
        .parameters()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("bn1.weight")),
        "batch norm weights are parameters: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("running_")),
        "running statistics listed as parameters: {names:?}"
    );
}

#[test]
fn reduced_precision_loads_and_runs() {
    let model = model::load(
        &onnx_dir().join("segmenter3d.onnx"),
        Device::Cpu,
        Kind::BFloat16,
        0,
    )
    .unwrap();
    let x = npy("segmenter3d_x1.npy").to_kind(Kind::BFloat16);
    let out = tch::no_grad(|| model.forward(&x)).unwrap();
    assert_eq!(out.kind(), Kind::BFloat16);
    // bf16 keeps ~3 significant digits: within 5% of the map's scale.
    let (diff, scale) = max_diff(&out.to_kind(Kind::Float), &npy("segmenter3d_x1_out0.npy"));
    assert!(
        diff <= 0.05 * scale,
        "bf16 differs by {diff} (scale {scale})"
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn corrupt_file_is_a_clear_error() {
    let err = model::load(
        &onnx_dir().join("corrupt.onnx"),
        Device::Cpu,
        Kind::Float,
        0,
    )
    .err()
    .unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("corrupt.onnx is not an ONNX model"), "{msg}");
}

#[test]
fn missing_external_data_names_the_file() {
    let dir = scratch("onnx_missing_data");
    let copy = dir.join("classifier2d.onnx");
    std::fs::copy(onnx_dir().join("classifier2d.onnx"), &copy).unwrap();
    let msg = format!(
        "{:#}",
        model::load(&copy, Device::Cpu, Kind::Float, 0)
            .err()
            .unwrap()
    );
    let expected = dir.join("classifier2d.onnx.data");
    assert!(msg.contains(&expected.display().to_string()), "{msg}");
    assert!(msg.contains("external data file"), "{msg}");
}

#[test]
fn truncated_external_data_is_a_clear_error() {
    let dir = scratch("onnx_short_data");
    std::fs::copy(
        onnx_dir().join("classifier2d.onnx"),
        dir.join("classifier2d.onnx"),
    )
    .unwrap();
    std::fs::write(dir.join("classifier2d.onnx.data"), [0u8; 100]).unwrap();
    let err = model::load(&dir.join("classifier2d.onnx"), Device::Cpu, Kind::Float, 0)
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("too short") || msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn unsupported_op_names_op_node_and_layer() {
    let err = model::load(
        &onnx_dir().join("unsupported_unique.onnx"),
        Device::Cpu,
        Kind::Float,
        0,
    )
    .err()
    .unwrap();
    let msg = format!("{err:#}");
    for part in ["`Unique`", "node_unique", "layer `mixer`", "not supported"] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
}

/// One error names every unsupported op, its nodes and layers, not only the first one met.
#[test]
fn every_unsupported_op_is_named_at_once() {
    let err = model::load(
        &onnx_dir().join("unsupported_several.onnx"),
        Device::Cpu,
        Kind::Float,
        0,
    )
    .err()
    .unwrap();
    let msg = format!("{err:#}");
    for part in [
        "2 op types",
        "`Unique` (5 nodes: `node_unique_0` in layer `block0`, `node_unique_1` in layer `block1`",
        "and 2 more",
        "`FusedGelu` (domain `com.microsoft`) (1 node: `node_fused`)",
        "Supported ops:",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    assert!(
        !msg.contains("node_unique_3"),
        "only three nodes per op are listed: {msg}"
    );
}

#[test]
fn wrong_input_shape_is_a_clear_error() {
    let model = load_model("classifier2d.onnx", 0);
    let err = model
        .forward(&Tensor::zeros([1, 3, 9, 8], (Kind::Float, Device::Cpu)))
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("expects an input of shape [B, 3, 8, 8]"),
        "{msg}"
    );
}

#[test]
fn hooked_forward_of_a_fixed_batch_model_needs_that_batch() {
    let model = load_model("classifier2d_fixed_b2.onnx", 0);
    struct Nothing;
    impl NodeHook for Nothing {}
    let x = npy("classifier2d_fixed_b2_x3.npy");
    let err = model
        .graph()
        .unwrap()
        .forward_hooked(&x, &mut Nothing)
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("fixed batch size of 2"),
        "{err:#}"
    );
}

// ---------------------------------------------------------------- the binary

#[test]
fn layers_command_lists_names_ops_and_shapes() {
    let (ok, stdout, stderr) = run(esegeta().args([
        "layers",
        "onnx/classifier2d.onnx",
        "--input",
        "onnx/classifier2d_x1.npy",
    ]));
    assert!(ok, "{stderr}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["layer", "op", "output", "shape"]);
    let expected = [
        ("conv1", "Conv", "[1, 4, 8, 8]"),
        ("pool", "MaxPool", "[1, 4, 4, 4]"),
        ("conv2", "Conv", "[1, 8, 4, 4]"),
        ("gap", "ReduceMean", "[1, 8, 1, 1]"),
        ("fc", "Gemm", "[1, 3]"),
    ];
    assert_eq!(rows.len(), expected.len() + 1, "{stdout}");
    for (row, (name, op, shape)) in rows[1..].iter().zip(expected) {
        assert_eq!(row[0], name, "{stdout}");
        assert_eq!(row[1], op, "{stdout}");
        assert_eq!(row[2..].join(" "), shape, "{stdout}");
    }
}

#[test]
fn layers_command_without_input_lists_names_and_ops() {
    let (ok, stdout, stderr) = run(esegeta().args(["layers", "onnx/deep_supervision.onnx"]));
    assert!(ok, "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["net.enc1.0", "Conv"]),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["net.up2", "ConvTranspose"]),
        "{stdout}"
    );
}

#[test]
fn layers_command_on_torchscript_explains_the_onnx_route() {
    let stderr = fails(esegeta().args(["layers", "classifier2d.pt"]));
    assert!(
        stderr.contains("TorchScript model") && stderr.contains("tools/export_model.py"),
        "{stderr}"
    );
}

#[test]
fn explain_on_onnx_equals_explain_on_torchscript() {
    let dir = scratch("onnx_explain");
    let (onnx_out, ts_out) = (dir.join("onnx.npy"), dir.join("ts.npy"));
    for (model, out) in [
        ("onnx/classifier2d.onnx", &onnx_out),
        ("classifier2d.pt", &ts_out),
    ] {
        let (ok, _, stderr) = run(explain_cmd(model, "classifier2d_x.npy", "captum.saliency")
            .args(["--target", "1", "--out"])
            .arg(out));
        assert!(ok, "{model}: {stderr}");
    }
    // Saliency is |d score / d x|: the same within 1e-5 of the map's scale.
    let (diff, scale) = max_diff(&load(&onnx_out), &load(&ts_out));
    assert!(
        scale > 0.0 && diff <= 1e-5 * scale + 1e-6,
        "max diff {diff:e}, scale {scale:e}"
    );
}

#[test]
fn explain_takes_the_output_index_of_an_onnx_model() {
    let dir = scratch("onnx_output_index");
    let out = dir.join("map.npy");
    let stderr = fails(
        explain_cmd(
            "onnx/deep_supervision.onnx",
            "onnx/deep_supervision_x1.npy",
            "captum.saliency",
        )
        .args(["--task", "segmentation", "--output-index", "5", "--out"])
        .arg(&out),
    );
    assert!(stderr.contains("has no output 5"), "{stderr}");
    let (ok, _, stderr) = run(explain_cmd(
        "onnx/deep_supervision.onnx",
        "onnx/deep_supervision_x1.npy",
        "captum.saliency",
    )
    .args(["--task", "segmentation", "--output-index", "1", "--out"])
    .arg(&out));
    assert!(ok, "{stderr}");
    assert_eq!(load(&out).size(), [1, 1, 8, 8, 8]);
}

/// The vessel models' ONNX exports compute what their TorchScript files compute, on a demo
/// volume (64^3, the exported shape) min-max scaled as in training (on the raw 0..1000
/// intensities the logits reach 2e4 and float32 rounding alone, PyTorch against itself in
/// float64, moves the probabilities by 1e-4), every output of unet_mss: max|onnx - torchscript| <= 1e-5 * max|torchscript| + 1e-6.
#[test]
fn vessel_onnx_models_equal_their_torchscript() {
    let folder = fixtures().join("../../configs/vessels");
    let raw = esegeta::io::load_input(&folder.join("vessels_00.nii.gz"))
        .unwrap()
        .tensor;
    let x = (&raw - raw.min()) / (raw.max() - raw.min());
    for (name, outputs) in [("unet", 1), ("unet_mss", 3), ("unet_mss_deform", 1)] {
        for index in 0..outputs {
            let load = |ext: &str| {
                model::load(
                    &folder.join(format!("models/{name}.{ext}")),
                    Device::Cpu,
                    Kind::Float,
                    index,
                )
                .unwrap_or_else(|e| panic!("{e:#}"))
            };
            let onnx = load("onnx");
            if index == 0 {
                // Unoptimised exports keep every parameter under its state_dict name.
                let names: Vec<String> = onnx
                    .parameters()
                    .unwrap()
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                let reference = load("pt").parameters().unwrap();
                for (want, _) in reference {
                    assert!(
                        names.contains(&want),
                        "{name}: no parameter {want} in {names:?}"
                    );
                }
            }
            let ours = tch::no_grad(|| onnx.forward(&x)).unwrap();
            let reference = tch::no_grad(|| load("pt").forward(&x)).unwrap();
            assert_close(&ours, &reference, &format!("{name} output {index}"));
        }
    }
}

/// The load errors reach the user from the binary as sentences, with a failing exit code.
#[test]
fn binary_reports_onnx_load_errors() {
    let stderr = fails(esegeta().args(["layers", "onnx/corrupt.onnx"]));
    assert!(
        stderr.contains("corrupt.onnx is not an ONNX model"),
        "{stderr}"
    );
    let dir = scratch("onnx_binary_missing_data");
    let stderr = fails(
        explain_cmd(
            "onnx/unsupported_unique.onnx",
            "classifier2d_x.npy",
            "captum.saliency",
        )
        .arg("--out")
        .arg(dir.join("map.npy")),
    );
    assert!(
        stderr.contains("`Unique`") && stderr.contains("node_unique"),
        "{stderr}"
    );
    std::fs::copy(onnx_dir().join("segmenter3d.onnx"), dir.join("seg.onnx")).unwrap();
    let stderr = fails(esegeta().arg("layers").arg(dir.join("seg.onnx")));
    assert!(
        stderr.contains("external data file") && stderr.contains("segmenter3d.onnx.data"),
        "{stderr}"
    );
}
