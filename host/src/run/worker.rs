//! Running one job in this process, with a worker's cached models, cancelling it
//! cooperatively at its deadline. (`child` runs a job in a process of its own.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use super::manifest::{JobRecord, Status};
use super::plan::PlannedJob;
use crate::config::{Loaded, Precision};
use crate::explain::{attribute, check_needs, Request};
use crate::host_services::{Progress, Segments};
use crate::model::{self, Model};
use crate::patch::PatchSpec;
use crate::plugins::Registry;

// Declared here rather than in run/mod.rs only to keep this change out of that file; it is a
// sibling module in spirit (run::worker::outputs).
#[path = "outputs.rs"]
mod outputs;

/// A job's execution settings: the method's overrides, else the run's.
#[derive(Clone, Debug)]
pub struct Settings {
    pub device_name: String,
    pub device: Device,
    pub precision: Precision,
    pub patching: Option<PatchSpec>,
    pub timeout: Option<Duration>,
}

pub fn settings(loaded: &Loaded, job: &PlannedJob, slot_device: &str) -> Result<Settings> {
    let method = &loaded.config.methods[job.method];
    let execution = &loaded.config.execution;
    let device_name = method
        .device
        .clone()
        .unwrap_or_else(|| slot_device.to_string());
    Ok(Settings {
        device: model::parse_device(&device_name)?,
        device_name,
        precision: method.precision.unwrap_or(execution.precision),
        patching: method
            .patching
            .clone()
            .or_else(|| execution.patching.clone()),
        timeout: method
            .timeout_s
            .or(execution.timeout_s)
            .map(Duration::from_secs_f64),
    })
}

/// A worker's models, loaded once per model, device and parameter kind.
#[derive(Default)]
pub struct Models {
    loaded: HashMap<(usize, String, Kind), Box<dyn Model>>,
}

impl Models {
    fn get(
        &mut self,
        loaded: &Loaded,
        index: usize,
        device: &str,
        kind: Kind,
    ) -> Result<&dyn Model> {
        let key = (index, device.to_string(), kind);
        if !self.loaded.contains_key(&key) {
            let m = load_model(loaded, index, device, kind)?;
            self.loaded.insert(key.clone(), m);
        }
        Ok(self.loaded[&key].as_ref())
    }
}

/// A fresh copy of the run's model `index` (randomisation works on one of its own).
pub(super) fn load_model(
    loaded: &Loaded,
    index: usize,
    device: &str,
    kind: Kind,
) -> Result<Box<dyn Model>> {
    let config = model_config(loaded, index)?;
    let path = loaded.resolve(&config.path);
    model::load_frozen(
        &path,
        model::parse_device(device)?,
        kind,
        &config.output(),
        config.freeze,
    )
}

pub(crate) fn model_config(loaded: &Loaded, index: usize) -> Result<&crate::config::ModelConfig> {
    loaded
        .config
        .model_list()
        .get(index)
        .copied()
        .ok_or_else(|| anyhow!("the config has no model {index}"))
}

pub(super) fn kind(precision: Precision) -> Kind {
    match precision {
        Precision::Fp32 => Kind::Float,
        Precision::Bf16 => Kind::BFloat16,
        Precision::Fp16 => Kind::Half,
        Precision::Fp64 => Kind::Double,
    }
}

/// Runs `job` here, cancelling it cooperatively at its deadline.
pub fn run_in_process(
    registry: &Registry,
    loaded: &Loaded,
    job: &PlannedJob,
    settings: &Settings,
    models: &mut Models,
    progress: Option<&Progress<'_>>,
) -> JobRecord {
    let started = Instant::now();
    let cancelled = AtomicBool::new(false);
    let (done, finished) = mpsc::channel::<()>();
    let outcome = std::thread::scope(|scope| {
        // Cancels the job at its deadline, or when the run is stopped (see run::cancel).
        let cancelled = &cancelled;
        let deadline = settings.timeout.map(|t| started + t);
        scope.spawn(move || loop {
            match finished.recv_timeout(Duration::from_millis(50)) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return, // the job ended
            }
            if super::cancel::stopped() || deadline.is_some_and(|d| Instant::now() >= d) {
                cancelled.store(true, Ordering::Relaxed);
                return;
            }
        });
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute(
                registry, loaded, job, settings, models, &cancelled, progress,
            )
        }))
        .unwrap_or_else(|p| {
            Err(anyhow!(
                "internal error: {}",
                esegeta_plugin_api::panic_message(&p)
            ))
        });
        drop(done);
        outcome
    });
    let timed_out = cancelled.load(Ordering::Relaxed);
    record(
        loaded,
        job,
        settings,
        started.elapsed(),
        peak_rss_mib(),
        outcome,
        timed_out,
    )
}

/// What a finished job produced.
pub struct Produced {
    pub files: Vec<PathBuf>,
    pub extras: Value,
    pub precision_fallback: bool,
    /// Sentences for the manifest's `warnings` (see [`JobRecord::warnings`]).
    pub warnings: Vec<String>,
}

fn execute(
    registry: &Registry,
    loaded: &Loaded,
    job: &PlannedJob,
    settings: &Settings,
    models: &mut Models,
    cancelled: &AtomicBool,
    progress: Option<&Progress<'_>>,
) -> Result<Produced> {
    if job.randomisation {
        return super::cascade::execute(registry, loaded, job, settings, cancelled, progress);
    }
    let method = &loaded.config.methods[job.method];
    let provided = registry.method(&method.id)?;
    let mut params = method.params.clone();
    if let (Some(layer), Value::Object(map)) = (&method.layer, &mut params) {
        map.insert("layer".into(), json!(layer));
    }
    if let (Some(truth), Value::Object(map)) = (&job.ground_truth, &mut params) {
        if crate::config::check::takes_mask(provided) && !map.contains_key("mask") {
            // Absolute: the plugin resolves relative paths against the config's folder, and
            // this one is resolved already.
            let truth = std::path::absolute(truth).unwrap_or_else(|_| truth.clone());
            map.insert("mask".into(), json!(truth));
        }
    }
    let input = crate::io::load_input(&job.input)?;
    let preprocessing = &loaded.config.preprocessing;
    let (prepared, undo) = super::preprocess::apply(&input.tensor, preprocessing, &job.input)?;
    let region = job
        .mask
        .as_ref()
        .map(|p| region_like(p, &input.tensor, preprocessing))
        .transpose()?;
    let config = &loaded.config;
    let model_config = model_config(loaded, job.model)?;
    let segments = Segments::default();
    let request = Request {
        method: &method.id,
        params: &params,
        target: job.target,
        task: model_config.task,
        wrapper: model_config.wrapper,
        region,
        fixed_mask: model_config.mask_mode == crate::config::MaskMode::Fixed,
        seed: config.execution.seed,
        memory_budget: config.execution.memory_budget_mb << 20,
        base_dir: loaded.base_dir.clone(),
        progress,
        // A patched job segments each window alone: no map of the whole input's segments.
        segments: settings.patching.is_none().then_some(&segments),
    };
    let run = |precision: Precision, models: &mut Models| -> Result<(Tensor, Value)> {
        // On CUDA, fp16 runs under autocast with an fp32 model; elsewhere model and input are
        // cast (autocast is CUDA-only in libtorch's C++ API).
        let autocast = settings.device.is_cuda() && precision == Precision::Fp16;
        let kind = if autocast {
            Kind::Float
        } else {
            kind(precision)
        };
        let model = models.get(loaded, job.model, &settings.device_name, kind)?;
        check_needs(provided, model, &method.id, &model_config.path)?;
        let inputs = prepared.to_device(settings.device).to_kind(kind);
        let patching = settings.patching.as_ref();
        tch::autocast(autocast, || {
            attribute_maybe_patched(registry, model, &inputs, &request, patching, cancelled)
        })
    };
    let (mut map, mut extras) = run(settings.precision, models)?;
    let mut precision_fallback = false;
    if settings.precision.is_reduced() && !bool::try_from(map.isfinite().all())? {
        tracing::warn!(
            "{}: the {:?} map holds NaN or inf; recomputing in fp32",
            job.id,
            settings.precision
        );
        (map, extras) = run(Precision::Fp32, models)?;
        precision_fallback = true;
    }
    // A metric's "map" is its score per example: only npy holds it, and no grid applies.
    let is_metric = provided.info.kind == esegeta_plugin_api::MethodKind::Metric;
    let map = map.to_kind(Kind::Float);
    let warnings: Vec<String> = super::caveats::collect(&map, &mut extras, is_metric);
    for w in &warnings {
        tracing::warn!("{}: {w}", job.id);
    }
    // A layer's map lies on the layer's grid: the input's crop and resize are not undone on
    // it, and NIfTI is skipped (the scan's affine would misplace it; see outputs.rs).
    let on_input_grid = map.size().get(2..) == prepared.size().get(2..);
    let map = if is_metric || !on_input_grid {
        map
    } else {
        undo.map(&map)?
    };
    let grid = outputs::Grid {
        is_metric,
        on_input_grid,
    };
    let mut written = outputs::write(job, &map, &input, grid, config.output.png_channels)?;
    if let Some(labels) = segments.into_inner().unwrap_or_else(|p| p.into_inner()) {
        let segments = outputs::write_segments(job, &labels, &input)?;
        written.files.extend(segments.files);
        written.warnings.extend(segments.warnings);
    }
    Ok(Produced {
        files: written.files,
        extras,
        precision_fallback,
        warnings: warnings.into_iter().chain(written.warnings).collect(),
    })
}

pub(crate) use crate::preprocess::region_like;

/// The method on the whole input, or on each sliding window stitched back together.
pub fn attribute_maybe_patched(
    registry: &Registry,
    model: &dyn Model,
    inputs: &Tensor,
    request: &Request<'_>,
    patching: Option<&PatchSpec>,
    cancelled: &AtomicBool,
) -> Result<(Tensor, Value)> {
    let Some(spec) = patching else {
        return attribute(registry, model, inputs, request, cancelled);
    };
    let mut extras = Vec::new();
    let map = crate::patch::attribute_patched(inputs, spec, |patch, window| {
        let region = request
            .region
            .as_ref()
            .map(|r| window_of(r, &window.start, &window.size));
        let patch_request = Request {
            region,
            base_dir: request.base_dir.clone(),
            ..*request
        };
        let (map, e) = attribute(registry, model, patch, &patch_request, cancelled)?;
        extras.push(e);
        Ok(map)
    })?;
    let warnings = empty_windows(&mut extras);
    Ok((map, json!({ "patches": extras, "warnings": warnings })))
}

/// A window without the target's class is normal (a vessel crosses few of them): its
/// empty-mask warning is dropped, and the job warns only when every window's mask was empty.
fn empty_windows(extras: &mut [Value]) -> Vec<String> {
    let mut empty = 0;
    for e in extras.iter_mut() {
        if let Some(Value::Array(list)) = e.get_mut("warnings") {
            let before = list.len();
            list.retain(|w| !w.as_str().is_some_and(crate::task::is_empty_mask_warning));
            empty += usize::from(list.len() < before);
        }
    }
    match empty == extras.len() && empty > 0 {
        true => vec![format!(
            "the target's mask is empty in each of the {empty} windows: no pixel of the model's \
             output on the unperturbed input belongs to it, so the map explains nothing; pick a \
             target the model segments here"
        )],
        false => Vec::new(),
    }
}

/// The part of a region (spatial dims last) under a window.
fn window_of(region: &Tensor, start: &[i64], size: &[i64]) -> Tensor {
    let offset = region.dim() as i64 - start.len() as i64;
    start
        .iter()
        .zip(size)
        .enumerate()
        .fold(region.shallow_clone(), |r, (d, (&s, &n))| {
            r.narrow(offset + d as i64, s, n)
        })
}

pub(super) fn record(
    loaded: &Loaded,
    job: &PlannedJob,
    settings: &Settings,
    elapsed: Duration,
    peak_rss_mib: f64,
    outcome: Result<Produced>,
    timed_out: bool,
) -> JobRecord {
    let method = &loaded.config.methods[job.method];
    let (status, error, produced) = match outcome {
        Ok(p) => (Status::Done, None, Some(p)),
        Err(e) if super::cancel::stopped() => (
            Status::Cancelled,
            Some(format!(
                "cancelled: the run was stopped while this job ran ({e:#}); run the config \
                 again to redo it"
            )),
            None,
        ),
        Err(e) if timed_out => (
            Status::TimedOut,
            Some(format!(
                "timed out after {:?}: {e:#}",
                settings.timeout.unwrap_or_default()
            )),
            None,
        ),
        Err(e) => (Status::Failed, Some(format!("{e:#}")), None),
    };
    JobRecord {
        id: job.id.clone(),
        input: job.input.clone(),
        model: job.model_label.clone(),
        method: method.id.clone(),
        name: method.name().to_string(),
        params: method.params.clone(),
        target: job.target,
        device: settings.device_name.clone(),
        precision: format!("{:?}", settings.precision).to_lowercase(),
        status,
        error,
        duration_s: elapsed.as_secs_f64(),
        peak_rss_mib,
        files: produced
            .as_ref()
            .map(|p| p.files.clone())
            .unwrap_or_default(),
        extras: produced
            .as_ref()
            .map(|p| p.extras.clone())
            .unwrap_or(Value::Null),
        precision_fallback: produced.as_ref().is_some_and(|p| p.precision_fallback),
        warnings: produced.map(|p| p.warnings).unwrap_or_default(),
        identity: Value::Null,
        rerun_because: Vec::new(),
    }
}

/// This process's peak resident memory (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// The `esegeta job` side: runs one planned job here and prints its record as JSON.
pub fn run_job_here(
    registry: &Registry,
    loaded: &Loaded,
    id: &str,
    device: &str,
) -> Result<JobRecord> {
    let jobs = super::plan::plan(loaded, &super::plan::randomised_methods(loaded, registry))?;
    let job = jobs
        .iter()
        .find(|j| j.id == id)
        .with_context(|| format!("the config plans no job `{id}`"))?;
    let settings = settings(loaded, job, device)?;
    let mut models = Models::default();
    Ok(run_in_process(
        registry,
        loaded,
        job,
        &settings,
        &mut models,
        None,
    ))
}
