//! One method on one input: the path `esegeta explain` takes (and each job of a run).
//!
//! model -> task wrapper -> plugin method (through the ABI, with a Host handle) -> map.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use abi_stable::std_types::RStr;
use anyhow::{bail, Context, Result};
use esegeta_plugin_api::abi::RunRequest;
use esegeta_plugin_api::TensorRef;
use serde_json::{json, Value};
use tch::{Device, Tensor};

use crate::config::Preprocessing;
use crate::host_services::JobHost;
use crate::io::Input;
use crate::model::{self, Model};
use crate::patch::PatchSpec;
use crate::plugins::{Provided, Registry};
use crate::preprocess;
use crate::task::{TaskKind, TaskWrapper, WrapperKind};

/// What to explain and how; the flags of `esegeta explain`.
#[derive(Clone, Debug)]
pub struct Job {
    pub model: PathBuf,
    pub input: PathBuf,
    pub method: String,
    pub params: Value,
    pub target: i64,
    pub task: TaskKind,
    pub wrapper: Option<WrapperKind>,
    pub mask: Option<PathBuf>,
    pub fixed_mask: bool,
    pub layer: Option<String>,
    pub device: Device,
    /// The model's and input's float kind: Float (fp32) or Double (fp64).
    pub kind: tch::Kind,
    pub output: model::Output,
    /// A TorchScript model's forward passes without gradients run frozen for inference
    /// (`--freeze`; see host/src/model/frozen.rs).
    pub freeze: bool,
    pub seed: u64,
    pub memory_budget: u64,
    /// How many times to run the method on the loaded model (at least 1; benchmarks).
    pub repeats: usize,
    /// Crop, resize, normalisation and channel order before the model sees the input; the
    /// map is brought back onto the input's grid.
    pub preprocessing: Preprocessing,
    /// Sliding-window patching; a `size` of one entry stands for that size along every
    /// spatial dimension.
    pub patching: Option<PatchSpec>,
}

/// A finished job: the attribution (Captum's shape) and the method's extras.
pub struct Explained {
    pub input: Input,
    pub attribution: Tensor,
    pub extras: Value,
    /// Wall time of the method itself (the plugin call), without loading or the task
    /// wrapper's reference forward: what `--timing` reports. The first run's.
    pub method_seconds: f64,
    /// With repeats: the median wall time of the runs after the first, which no longer pay
    /// first-call costs (kernel selection, first-touch page faults): what each job after the
    /// first of a run costs.
    pub warm_seconds: Option<f64>,
    /// The process's peak resident memory when the first run ended (MiB): what one run
    /// costs, before repeats add the allocator's fragmentation.
    pub peak_rss_mib: f64,
}

/// Checks everything that can be checked without the model, then runs the job.
pub fn explain(registry: &Registry, job: &Job) -> Result<Explained> {
    let method = registry.method(&job.method)?;
    let params = params_with_layer(method, job)?;
    crate::params::check(
        &job.method,
        method.info.params_schema.as_str(),
        &params,
        "params",
    )?;
    let input = crate::io::load_input(&job.input)?;
    let (prepared, undo) = preprocess::apply_labelled(
        &input.tensor,
        &job.preprocessing,
        &job.input,
        &preprocess::FLAGS,
    )?;
    let patching = job
        .patching
        .clone()
        .map(|spec| every_dimension(spec, &input.tensor.size()[2..], &job.input))
        .transpose()?;
    let model = model::load_frozen(&job.model, job.device, job.kind, &job.output, job.freeze)?;
    check_needs(method, model.as_ref(), &job.method, &job.model)?;
    let region = job
        .mask
        .as_ref()
        .map(|p| preprocess::region_like(p, &input.tensor, &job.preprocessing))
        .transpose()?;
    let request = Request {
        method: &job.method,
        params: &params,
        target: job.target,
        task: job.task,
        wrapper: job.wrapper,
        region,
        fixed_mask: job.fixed_mask,
        seed: job.seed,
        memory_budget: job.memory_budget,
        base_dir: std::env::current_dir().unwrap_or_default(),
        progress: None,
        segments: None,
    };
    let cancelled = AtomicBool::new(false);
    let inputs = prepared.to_device(job.device).to_kind(job.kind);
    let once = || -> Result<(Tensor, Value, f64)> {
        match &patching {
            None => attribute_timed(registry, model.as_ref(), &inputs, &request, &cancelled),
            Some(spec) => {
                // Timed around every window, each with its task wrapper's reference forward.
                let started = std::time::Instant::now();
                let (map, extras) = crate::run::worker::attribute_maybe_patched(
                    registry,
                    model.as_ref(),
                    &inputs,
                    &request,
                    Some(spec),
                    &cancelled,
                )?;
                // Windows without extras of their own make no `patches` list to print.
                let empty = extras["patches"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|e| e.as_object().is_none_or(|m| m.is_empty())));
                let extras = if empty { json!({}) } else { extras };
                Ok((map, extras, started.elapsed().as_secs_f64()))
            }
        }
    };
    let (mut attribution, mut extras, method_seconds) = once()?;
    let peak_rss_mib = crate::run::worker::peak_rss_mib();
    let mut warm = Vec::new();
    for _ in 1..job.repeats {
        let seconds;
        (attribution, extras, seconds) = once()?;
        warm.push(seconds);
    }
    warm.sort_by(f64::total_cmp);
    // A layer's map lies on the layer's grid and a metric's is one score per example: only a
    // map on the preprocessed input's grid is brought back onto the input's.
    if attribution.size().get(2..) == prepared.size().get(2..) {
        attribution = undo.map(&attribution)?;
    }
    Ok(Explained {
        input,
        attribution,
        extras,
        method_seconds,
        warm_seconds: warm.get(warm.len() / 2).copied(),
        peak_rss_mib,
    })
}

/// A window size given once (`--patch 64`) is that size along every spatial dimension; else
/// `--patch` must give one size per dimension.
fn every_dimension(
    mut spec: PatchSpec,
    spatial: &[i64],
    input: &std::path::Path,
) -> Result<PatchSpec> {
    if spec.size.len() == 1 {
        spec.size = vec![spec.size[0]; spatial.len()];
    }
    if spec.size.len() != spatial.len() {
        bail!(
            "--patch gives {} window sizes but {} has {} spatial dimensions {spatial:?}; give one \
             size per dimension ({}) or a single size for all",
            spec.size.len(),
            input.display(),
            spatial.len(),
            vec!["N"; spatial.len()].join("x")
        );
    }
    Ok(spec)
}

/// One method call on a loaded model, whatever drives it (the CLI, a run's worker, a patch).
pub struct Request<'a> {
    pub method: &'a str,
    /// Already checked against the method's schema.
    pub params: &'a Value,
    pub target: i64,
    pub task: TaskKind,
    pub wrapper: Option<WrapperKind>,
    /// The `mask` wrapper's region, on the input's spatial grid.
    pub region: Option<Tensor>,
    pub fixed_mask: bool,
    pub seed: u64,
    pub memory_budget: u64,
    /// Relative paths in parameters are resolved against this folder.
    pub base_dir: PathBuf,
    pub progress: Option<&'a crate::host_services::Progress<'a>>,
    /// Where the host keeps the superpixels or supervoxels it makes for the method (the last
    /// segmentation asked for), for the report's segment map.
    pub segments: Option<&'a crate::host_services::Segments>,
}

/// Wraps the model for the task on `inputs`, checks the target, and runs the method.
pub fn attribute(
    registry: &Registry,
    model: &dyn Model,
    inputs: &Tensor,
    request: &Request<'_>,
    cancelled: &AtomicBool,
) -> Result<(Tensor, Value)> {
    attribute_timed(registry, model, inputs, request, cancelled)
        .map(|(map, extras, _)| (map, extras))
}

/// [`attribute`], plus the wall time in seconds of the method call alone.
pub fn attribute_timed(
    registry: &Registry,
    model: &dyn Model,
    inputs: &Tensor,
    request: &Request<'_>,
    cancelled: &AtomicBool,
) -> Result<(Tensor, Value, f64)> {
    let reference = tch::no_grad(|| model.forward(inputs))?;
    let region = request.region.as_ref().map(|r| r.shallow_clone());
    let wrapper = TaskWrapper::new(
        request.task,
        request.wrapper,
        &reference,
        request.fixed_mask,
        region,
    )?;
    check_target(
        &tch::no_grad(|| wrapper.scores(&reference))?,
        request.target,
    )?;
    let empty_mask = wrapper.empty_mask(&reference, request.target)?;
    let host = JobHost {
        model,
        wrapper: &wrapper,
        registry,
        base_dir: request.base_dir.clone(),
        seed: request.seed,
        memory_budget: request.memory_budget,
        cancelled,
        progress: request.progress,
        segments: request.segments,
        device: inputs.device(),
        kind: inputs.kind(),
        near: Default::default(),
        warnings: std::sync::Mutex::new(empty_mask.into_iter().collect()),
    };
    let params_json = request.params.to_string();
    let run = RunRequest {
        method_id: RStr::from_str(request.method),
        params_json: RStr::from_str(&params_json),
        inputs: TensorRef::new(inputs),
        target: request.target,
    };
    let started = std::time::Instant::now();
    let out = host
        .run(run)
        .with_context(|| format!("{} failed", request.method))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut extras = serde_json::from_str(out.extras_json.as_str()).unwrap_or(Value::Null);
    let warnings = host
        .warnings
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    if !warnings.is_empty() {
        if !extras.is_object() {
            extras = Value::Object(Default::default());
        }
        extras["warnings"] = Value::from(warnings);
    }
    Ok((out.attribution.into_tensor(), extras, seconds))
}

/// `--layer` goes to the methods that need layers (layer, neuron and feature-visualisation
/// methods) as their `layer` parameter.
fn params_with_layer(method: &Provided, job: &Job) -> Result<Value> {
    let mut params = job.params.clone();
    if let Some(layer) = &job.layer {
        if !method.info.needs.layers {
            bail!("{} is not a layer method; drop --layer", job.method);
        }
        if let Value::Object(map) = &mut params {
            map.insert("layer".into(), Value::from(layer.as_str()));
        }
    }
    Ok(params)
}

/// Refuses a method that needs what the model cannot give (layers, rules of a black box).
pub fn check_needs(
    method: &Provided,
    model: &dyn Model,
    method_id: &str,
    model_path: &std::path::Path,
) -> Result<()> {
    let needs = method.info.needs;
    if (needs.layers || needs.backward_rules) && !model.is_graph() {
        bail!(
            "{} needs {} but {} is a TorchScript model, a black box to libtorch; export the \
             PyTorch model to ONNX and pass the .onnx file: {}",
            method_id,
            if needs.layers {
                "named layers"
            } else {
                "backward rules"
            },
            model_path.display(),
            crate::layers::EXPORT_COMMAND
        );
    }
    Ok(())
}

fn check_target(scores: &Tensor, target: i64) -> Result<()> {
    let columns = scores.size()[1];
    if target < 0 || target >= columns {
        bail!(
            "target {target} is outside the score columns: the wrapped model gives {columns} \
             score(s) per example, so the target must be between 0 and {} (`--target` of \
             explain, `inputs[].targets` of a run config)",
            columns - 1
        );
    }
    Ok(())
}
