//! Every ONNX op of tools/make_op_fixtures.py on its own, against PyTorch: forward values
//! and the gradient of `sum_k sum(out_k * cotangent_k)` with respect to every floating input,
//! against `torch.autograd` on the same op.
//!
//! A `spec` case is a one-node graph: the test loads it with esegeta's loader, runs the whole
//! model on its input, then runs the node itself on all its inputs (initializers included,
//! so that updates, second operands and OneHot's values get their gradient checked too). An
//! `export` case is what PyTorch's exporter wrote for a one-op module: the whole model runs,
//! output by output, and the gradient flows back to its input.

#[macro_use]
mod common;

use std::path::PathBuf;

use common::*;
use esegeta::model;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

fn dir() -> PathBuf {
    fixture("ops")
}

fn case(name: &str) -> Value {
    fixture_case(fixture_cases("ops/cases.json", "/cases"), name)
}

/// A fixture tensor in the dtype and shape the case states (the npy reader gives float32,
/// which holds the fixtures' small integers exactly, and a scalar as one element).
fn tensor(spec: &Value, file: &str) -> Tensor {
    let mut t = load(&dir().join(spec[file].as_str().unwrap()));
    if let Some(shape) = spec["shape"].as_array() {
        let shape: Vec<i64> = shape.iter().map(|d| d.as_i64().unwrap()).collect();
        t = t.reshape(&shape);
    }
    match spec["dtype"].as_str().unwrap_or("float32") {
        "int64" => t.to_kind(Kind::Int64),
        "bool" => t.to_kind(Kind::Bool),
        _ => t,
    }
}

/// Floating values agree to float32 rounding of a computation done in another order:
/// max|ours - torch| <= 1e-5 * max|torch| + 1e-6. Integer and boolean outputs (indices,
/// shapes, masks) agree exactly.
fn assert_close(ours: &Tensor, torch: &Tensor, what: &str) {
    assert_eq!(ours.size(), torch.size(), "{what}: shapes differ");
    let exact = !matches!(torch.kind(), Kind::Float | Kind::Double);
    let (o, t) = (ours.to_kind(Kind::Double), torch.to_kind(Kind::Double));
    if o.numel() == 0 {
        return;
    }
    let (diff, scale) = max_diff(&o, &t);
    let tolerance = if exact { 0.0 } else { 1e-5 * scale + 1e-6 };
    assert!(
        diff <= tolerance,
        "{what}: max|ours - torch| = {diff:e}, max|torch| = {scale:e} (tolerance {tolerance:e})"
    );
}

/// `sum_k sum(out_k * cot_k)` over the floating outputs that carry a gradient.
fn loss(outputs: &[Tensor], c: &Value) -> Option<Tensor> {
    let mut total: Option<Tensor> = None;
    for (out, spec) in outputs.iter().zip(c["outputs"].as_array().unwrap()) {
        if spec.get("cotangent").is_none() {
            continue;
        }
        if !out.requires_grad() {
            continue;
        }
        let term = (out * tensor(spec, "cotangent")).sum(Kind::Float);
        total = Some(match total {
            Some(t) => t + term,
            None => term,
        });
    }
    total
}

/// The gradients of `loss` for `leaves`; zeros where the outputs carry none (Hardmax,
/// NonZero), as PyTorch's are.
fn gradients(loss: Option<Tensor>, leaves: &[Tensor]) -> Vec<Tensor> {
    match loss {
        Some(l) => Tensor::run_backward(&[l], leaves, false, false),
        None => leaves.iter().map(Tensor::zeros_like).collect(),
    }
}

fn inputs(c: &Value) -> Vec<(Tensor, bool)> {
    c["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let t = tensor(i, "file");
            let grad = i["grad"].as_bool().unwrap();
            (if grad { t.set_requires_grad(true) } else { t }, grad)
        })
        .collect()
}

fn check_gradients(c: &Value, given: &[(Tensor, bool)], loss: Option<Tensor>, what: &str) {
    let leaves: Vec<Tensor> = given
        .iter()
        .filter(|(_, g)| *g)
        .map(|(t, _)| t.shallow_clone())
        .collect();
    let mut found = gradients(loss, &leaves).into_iter();
    for (i, (spec, (_, grad))) in c["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(given)
        .enumerate()
    {
        if !grad {
            continue;
        }
        let ours = found.next().unwrap();
        let torch = tensor(spec, "gradient").to_kind(Kind::Float);
        assert_close(&ours, &torch, &format!("{what}: gradient of input {i}"));
    }
}

fn check(name: &str) {
    let c = case(name);
    let path = dir().join(c["model"].as_str().unwrap());
    let outputs = c["outputs"].as_array().unwrap();
    let expected: Vec<Tensor> = outputs.iter().map(|o| tensor(o, "file")).collect();
    let given = inputs(&c);
    let load = |k: usize| {
        model::load(&path, Device::Cpu, Kind::Float, k).unwrap_or_else(|e| panic!("{e:#}"))
    };
    if c["kind"] == "export" {
        // The whole exported graph, one output at a time; the gradients add up.
        let x = &given[0].0;
        let mut ours = Vec::new();
        for (k, reference) in expected.iter().enumerate() {
            let y = load(k).forward(x).unwrap_or_else(|e| panic!("{e:#}"));
            assert_close(&y, reference, &format!("{name}: output {k}"));
            ours.push(y);
        }
        check_gradients(&c, &given, loss(&ours, &c), name);
        return;
    }
    let model = load(0);
    if given[0].0.kind() == Kind::Float && given[0].0.dim() > 0 {
        let y = tch::no_grad(|| model.forward(&given[0].0)).unwrap_or_else(|e| panic!("{e:#}"));
        assert_close(&y, &expected[0], &format!("{name}: the model's output"));
    }
    let graph = model.graph().expect("an ONNX model is a graph");
    assert_eq!(graph.node_count(), 1, "{name}: a spec case is one node");
    let node = graph.node(0);
    let values: Vec<Option<Tensor>> = given.iter().map(|(t, _)| Some(t.shallow_clone())).collect();
    let ours = node
        .run(&values)
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert_eq!(ours.len(), expected.len(), "{name}: output count");
    for (k, (o, e)) in ours.iter().zip(&expected).enumerate() {
        assert_close(o, e, &format!("{name}: node output {k}"));
    }
    check_gradients(&c, &given, loss(&ours, &c), name);
}

cases!(
    einsum_matmul,
    einsum_attention,
    einsum_broadcast_ellipsis,
    einsum_implicit_spaces,
    einsum_diagonal_sum,
    gather_elements_axis1,
    gather_elements_negative,
    gather_nd_elements,
    gather_nd_slices_negative,
    gather_nd_batch_dims,
    scatter_nd_none,
    scatter_nd_elements,
    scatter_nd_add,
    scatter_nd_mul,
    scatter_nd_max,
    scatter_nd_min,
    scatter_elements_none,
    scatter_elements_add,
    scatter_elements_mul,
    scatter_elements_max,
    scatter_elements_min,
    topk_largest_last_axis,
    topk_smallest_axis1_unsorted,
    topk_opset9_attribute,
    cumsum_plain,
    cumsum_exclusive1_reverse0,
    cumsum_exclusive0_reverse1,
    cumsum_exclusive1_reverse1,
    trilu_upper_default,
    trilu_upper_k2,
    trilu_lower_k_neg1,
    one_hot_last_axis,
    one_hot_axis0,
    nonzero,
    hardmax_last_axis,
    hardmax_axis1,
    hardmax_opset11_flattens,
    range_int,
    range_float_negative_delta,
    mod_fmod_broadcast,
    mod_integer_python_sign,
    reduce_log_sum_exp_axes_attr,
    reduce_log_sum_exp_axes_input,
    reduce_log_sum_exp_all,
    lp_normalization_l2_default,
    lp_normalization_l1_axis1,
    mish,
    thresholded_relu_default,
    thresholded_relu_alpha,
    depth_to_space_crd,
    depth_to_space_dcr_default,
    space_to_depth,
    resize_cubic_half_pixel_scales,
    resize_cubic_align_corners_sizes,
    resize_cubic_downscale_pytorch_half_pixel,
    resize_cubic_1d_separable,
    resize_cubic_a_half_exclude_outside_asymmetric,
    maxpool_indices_2d_symmetric,
    maxpool_indices_2d_asymmetric_pads,
    maxpool_indices_1d_dilated_ceil,
    maxpool_indices_3d,
    export_cumsum,
    export_topk,
    export_topk_smallest_unsorted,
    export_gather,
    export_scatter,
    export_scatter_add,
    export_gather_negative_dim,
    export_scatter_reduce_amax,
    export_scatter_reduce_prod,
    export_index_put,
    export_index_put_accumulate,
    export_bicubic_half_pixel,
    export_bicubic_align_corners,
    export_maxpool_indices,
    export_maxpool_indices_padded,
    export_pixel_shuffle,
    export_tril,
    export_triu,
    export_nonzero,
    export_logsumexp,
    export_einsum,
    export_mish,
    export_fmod,
    export_conv3d_no_bias_unoptimised,
    export_conv_transpose3d_no_bias_unoptimised,
    export_chunk_unoptimised,
    export_split_unoptimised,
    export_adaptive_avg_pool,
);

#[test]
fn every_fixture_case_is_listed() {
    for c in fixture_cases("ops/cases.json", "/cases") {
        let name = c["name"].as_str().unwrap();
        assert!(LISTED.contains(&name), "{name} is not in cases!()");
    }
}
