//! The model-aware part of `check`: the first input of the config goes through each model and
//! its task wrapper once, so that what would fail every job (an input the export cannot take,
//! a target outside the score columns) is reported before any job starts.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use super::Loaded;
use crate::task::TaskWrapper;

/// One problem per model whose dry run fails, by config path.
pub fn problems(loaded: &Loaded) -> Vec<String> {
    let config = &loaded.config;
    let Some((spec_index, first)) = config.inputs.iter().enumerate().find_map(|(i, spec)| {
        crate::run::plan::expand(loaded, &spec.path)
            .ok()
            .and_then(|files| files.into_iter().next())
            .map(|f| (i, f))
    }) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (m, at, path, model) in super::check::existing_models(loaded) {
        match columns(loaded, m, spec_index, &first) {
            Err(e) => problems.push(format!(
                "{at}: the dry run of {} through {} failed: {e:#}",
                first.display(),
                path.display()
            )),
            Ok(columns) => {
                for (i, spec) in config.inputs.iter().enumerate() {
                    for (k, &t) in spec.targets.iter().enumerate() {
                        if t < 0 || t >= columns {
                            problems.push(format!(
                                "inputs[{i}].targets[{k}]: target {t} is outside the {columns} \
                                 score column(s) that {} ({at}, {}) gives; use 0 to {}",
                                path.display(),
                                wrapper_words(model),
                                columns - 1
                            ));
                        }
                    }
                }
            }
        }
    }
    problems
}

fn wrapper_words(model: &super::ModelConfig) -> String {
    match (model.task, model.wrapper) {
        (crate::task::TaskKind::Classification, _) => "classification".into(),
        (_, w) => format!(
            "segmentation through the {} wrapper",
            format!("{:?}", w.unwrap_or(crate::task::WrapperKind::Argmax)).to_lowercase()
        ),
    }
}

/// The number of score columns model `m` gives on `input` (preprocessed as the run would).
fn columns(loaded: &Loaded, m: usize, spec_index: usize, input: &std::path::Path) -> Result<i64> {
    let model_config = crate::run::worker::model_config(loaded, m)?;
    let path = loaded.resolve(&model_config.path);
    let model = crate::model::load_output(&path, Device::Cpu, Kind::Float, &model_config.output())?;
    let loaded_input = crate::io::load_input(input)?;
    let preprocessing = &loaded.config.preprocessing;
    let (prepared, _) = crate::run::preprocess::apply(&loaded_input.tensor, preprocessing, input)?;
    let region: Option<Tensor> = loaded.config.inputs[spec_index]
        .mask
        .as_ref()
        .map(|p| {
            crate::preprocess::region_like(&loaded.resolve(p), &loaded_input.tensor, preprocessing)
        })
        .transpose()?;
    // Patching feeds the model windows, not the whole input: the first window is what the
    // model must take.
    let patching = loaded.config.execution.patching.as_ref();
    let prepared = match patching {
        Some(spec) => first_window(&prepared, spec),
        None => prepared,
    };
    let region = match (region, patching) {
        (Some(r), Some(spec)) => Some(first_window(&r, spec)),
        (r, _) => r,
    };
    let reference = tch::no_grad(|| model.forward(&prepared))?;
    let wrapper = TaskWrapper::new(
        model_config.task,
        model_config.wrapper,
        &reference,
        model_config.mask_mode == super::MaskMode::Fixed,
        region,
    )?;
    let scores = tch::no_grad(|| wrapper.scores(&reference))?;
    Ok(scores.size()[1])
}

/// The top-left window of the patching (whole dims where the input is smaller).
fn first_window(t: &Tensor, spec: &crate::patch::PatchSpec) -> Tensor {
    let spatial = t.size()[2..].to_vec();
    spec.size
        .iter()
        .zip(&spatial)
        .enumerate()
        .fold(t.shallow_clone(), |t, (d, (&w, &n))| {
            t.narrow(2 + d as i64, 0, w.min(n))
        })
}
