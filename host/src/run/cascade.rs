//! A cascading randomisation job: the method on the trained model (stage 0), then again after
//! each further group of layers is re-initialised from the output end (see
//! crate::randomisation). Each stage's map is saved (`..._stage<k>.npy`, on the input's grid)
//! and compared with stage 0's; the comparisons go to the manifest's extras, with a flag when
//! the maps do not decay.
//!
//! The job loads a model of its own and drops it after, so the worker's cached models stay
//! trained. Stages run in order in one job because each builds on the last.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::plan::PlannedJob;
use super::worker::{self, Produced, Settings};
use crate::config::{Loaded, Randomisation};
use crate::explain::{check_needs, Request};
use crate::host_services::Progress;
use crate::plugins::Registry;
use crate::randomisation::{cascade_order, similarity};

/// The flag's rule: the maps do not decay when the last stage's map still ranks voxels like
/// the original (Spearman rank correlation of the absolute values above this).
pub const FLAG_ABOVE: f64 = 0.5;

pub fn execute(
    registry: &Registry,
    loaded: &Loaded,
    job: &PlannedJob,
    settings: &Settings,
    cancelled: &AtomicBool,
    progress: Option<&Progress<'_>>,
) -> Result<Produced> {
    let config = &loaded.config;
    let spec: &Randomisation = config
        .randomisation
        .as_ref()
        .context("the config has no randomisation section")?;
    let seed = spec.seed.unwrap_or(config.execution.seed);
    let method = &config.methods[job.method];
    let provided = registry.method(&method.id)?;
    let mut params = method.params.clone();
    if let (Some(layer), Value::Object(map)) = (&method.layer, &mut params) {
        map.insert("layer".into(), json!(layer));
    }
    let model_config = worker::model_config(loaded, job.model)?;
    let kind = worker::kind(settings.precision);
    let model = worker::load_model(loaded, job.model, &settings.device_name, kind)?;
    check_needs(provided, model.as_ref(), &method.id, &model_config.path)?;
    let parameters = model.parameters()?;
    let names: Vec<String> = parameters.iter().map(|(n, _)| n.clone()).collect();
    let groups = cascade_order(&names, spec.granularity);
    let order: Vec<&String> = groups.iter().map(|(g, _)| g).collect();
    if groups.is_empty() {
        bail!(
            "{} has no parameters to randomise",
            loaded.resolve(&model_config.path).display()
        );
    }

    let input = crate::io::load_input(&job.input)?;
    let (prepared, undo) =
        super::preprocess::apply(&input.tensor, &config.preprocessing, &job.input)?;
    let region = job
        .mask
        .as_ref()
        .map(|p| worker::region_like(p, &input.tensor, &config.preprocessing))
        .transpose()?;
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
        progress: None,
        segments: None,
    };
    let inputs = prepared.to_device(settings.device).to_kind(kind);
    let stem = stage_stem(job)?;

    let mut files = Vec::new();
    let mut stages = Vec::new();
    let mut original: Option<Tensor> = None;
    for k in 0..=groups.len() {
        if let Some(report) = progress {
            report(k as u64, groups.len() as u64 + 1);
        }
        if k > 0 {
            crate::randomisation::advance(&parameters, &groups, k, seed)?;
        }
        let (map, _) = worker::attribute_maybe_patched(
            registry,
            model.as_ref(),
            &inputs,
            &request,
            settings.patching.as_ref(),
            cancelled,
        )
        .with_context(|| format!("stage {k} of the randomisation"))?;
        let map = undo.map(&map.to_kind(tch::Kind::Float))?;
        let file = PathBuf::from(format!("{stem}_stage{k}.npy"));
        crate::io::write_map(&map, &input, &file)?;
        files.push(file.clone());
        let base = original.get_or_insert_with(|| map.shallow_clone());
        stages.push(compare(k, &order[..k], &file, base, &map)?);
    }
    let last = stages.last().and_then(|s| s["spearman_abs"].as_f64());
    let flagged = last.is_some_and(|r| r > FLAG_ABOVE);
    Ok(Produced {
        files,
        extras: json!({
            "granularity": spec.granularity,
            "seed": seed,
            "order": order,
            "init": "PyTorch defaults: kaiming_uniform(a=sqrt(5)) weights and their biases; norm weights 1, biases 0; others normal with their own mean and std",
            "stages": stages,
            "flagged": flagged,
            "flag_rule": format!("the last stage's Spearman rank correlation of |map| with the original's is above {FLAG_ABOVE}"),
        }),
        precision_fallback: false,
        warnings: Vec::new(),
    })
}

/// `..._target<N>` of the planned npy output, to which `_stage<k>.npy` is added.
fn stage_stem(job: &PlannedJob) -> Result<String> {
    let (_, path) = job
        .outputs
        .first()
        .context("a randomisation job plans an npy output")?;
    let text = path.display().to_string();
    Ok(text.strip_suffix(".npy").unwrap_or(&text).to_string())
}

fn compare(
    k: usize,
    randomised: &[&String],
    file: &PathBuf,
    original: &Tensor,
    map: &Tensor,
) -> Result<Value> {
    let values = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1));
    let (a, b) = (values(original)?, values(map)?);
    let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<f64>>();
    let ssim = match similarity::ssim(original, map) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!("no SSIM: {e:#}");
            None
        }
    };
    let finite = |v: f64| v.is_finite().then_some(v);
    Ok(json!({
        "stage": k,
        "randomised": randomised,
        "file": file,
        "spearman": finite(similarity::spearman(&a, &b)),
        "spearman_abs": finite(similarity::spearman(&abs(&a), &abs(&b))),
        "ssim": ssim,
    }))
}
