//! The plan of a run: jobs = inputs x models x methods x targets (plus one cascading
//! randomisation job per randomised method), in a deterministic order, and the share of them
//! that one shard runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::config::{Format, Loaded};

/// One job: one method on one input through one model for one target.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedJob {
    /// `<input>/<model>/<method name>/target<N>` (with `/randomisation` for a cascade):
    /// unique in the run, stable across runs.
    pub id: String,
    pub input: PathBuf,
    /// The input's name in output paths (its file stem, made unique).
    pub input_name: String,
    pub mask: Option<PathBuf>,
    /// The input's ground truth, for metrics that take a `mask` and set none.
    pub ground_truth: Option<PathBuf>,
    /// Index into the config's model list (`models`, or the single `model`).
    pub model: usize,
    /// The model's label in ids and output paths.
    pub model_label: String,
    /// Index into the config's `methods`.
    pub method: usize,
    pub target: i64,
    /// Output files, by format. A randomisation job writes one map per stage, named from the
    /// first of these (`..._stage<k>.npy`); the stages are known once the model is loaded.
    pub outputs: Vec<(Format, PathBuf)>,
    /// A cascading randomisation job: the method re-run as layers are re-initialised.
    pub randomisation: bool,
}

/// The files a config input names: a file, or the sorted matches of a glob.
pub fn expand(loaded: &Loaded, pattern: &str) -> Result<Vec<PathBuf>> {
    let full = loaded.resolve(pattern);
    let text = full.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        if !full.is_file() {
            bail!("{} does not exist", full.display());
        }
        return Ok(vec![full]);
    }
    let mut files: Vec<PathBuf> = glob::glob(&text)
        .with_context(|| format!("`{pattern}` is not a valid glob"))?
        .filter_map(|p| p.ok())
        .filter(|p| p.is_file())
        .collect();
    if files.is_empty() {
        bail!(
            "`{pattern}` matches no file (looked in {})",
            loaded.base_dir.display()
        );
    }
    files.sort();
    Ok(files)
}

/// Every job of the run, sorted by id. `randomised[m]` says whether method `m` gets a
/// cascading randomisation job (see [`randomised_methods`]).
pub fn plan(loaded: &Loaded, randomised: &[bool]) -> Result<Vec<PlannedJob>> {
    let config = &loaded.config;
    let folder = loaded.output_folder();
    let models: Vec<String> = config.model_list().iter().map(|m| m.label()).collect();
    let expanded = config
        .inputs
        .iter()
        .map(|spec| expand(loaded, &spec.path))
        .collect::<Result<Vec<_>>>()?;
    check_job_count(loaded, &expanded, randomised, models.len())?;
    let mut jobs = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (spec, files) in config.inputs.iter().zip(expanded) {
        for input in files {
            let input_name = unique_name(&mut names, &input);
            let mask = spec.mask.as_ref().map(|p| loaded.resolve(p));
            let ground_truth = spec
                .ground_truth
                .as_ref()
                .map(|p| loaded.resolve(p.replace("{stem}", &file_stem(&input))));
            for (k, model_label) in models.iter().enumerate() {
                for (m, method) in config.methods.iter().enumerate() {
                    for &target in &spec.targets {
                        let base = format!(
                            "{input_name}/{model_label}/{}/target{target}",
                            method.name()
                        );
                        let dir = folder.join(&input_name).join(model_label);
                        let stem = dir.join(format!("{}_target{target}", method.name()));
                        let job = PlannedJob {
                            id: base.clone(),
                            input: input.clone(),
                            input_name: input_name.clone(),
                            mask: mask.clone(),
                            ground_truth: ground_truth.clone(),
                            model: k,
                            model_label: model_label.clone(),
                            method: m,
                            target,
                            outputs: with_formats(&stem, formats(loaded, m, &input)),
                            randomisation: false,
                        };
                        if randomised.get(m).copied().unwrap_or(false)
                            && randomises_model(loaded, model_label)
                        {
                            let stem = dir
                                .join("randomisation")
                                .join(format!("{}_target{target}", method.name()));
                            jobs.push(PlannedJob {
                                id: format!("{base}/randomisation"),
                                outputs: with_formats(&stem, vec![Format::Npy]),
                                randomisation: true,
                                ..job.clone()
                            });
                        }
                        jobs.push(job);
                    }
                }
            }
        }
    }
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(jobs)
}

/// The most jobs one run plans: a config's lists multiply (inputs x models x methods x
/// targets), and a typo in a glob or a target range must not allocate millions of jobs.
pub const MAX_JOBS: usize = 200_000;

/// Counts the jobs of the expanded inputs before any is made, and refuses more than
/// [`MAX_JOBS`].
fn check_job_count(
    loaded: &Loaded,
    expanded: &[Vec<PathBuf>],
    randomised: &[bool],
    models: usize,
) -> Result<()> {
    let config = &loaded.config;
    let per_target = models * (config.methods.len() + randomised.iter().filter(|&&r| r).count());
    let total = config
        .inputs
        .iter()
        .zip(expanded)
        .fold(0usize, |total, (spec, files)| {
            let jobs = files.len().saturating_mul(spec.targets.len());
            total.saturating_add(jobs.saturating_mul(per_target))
        });
    if total > MAX_JOBS {
        bail!(
            "the config plans {total} jobs (inputs x targets x models x methods), more than \
             the {MAX_JOBS} one run takes; check the input globs and target lists, or split \
             the study into several configs"
        );
    }
    Ok(())
}

/// Which methods the config's `randomisation` section re-runs: those it names, else every
/// method that makes a map over the input (attribution methods; not metrics, not layer
/// methods). Names it gives that match no method are a config error caught by `check`.
pub fn randomised_methods(loaded: &Loaded, registry: &crate::plugins::Registry) -> Vec<bool> {
    let config = &loaded.config;
    let Some(r) = config.randomisation.as_ref().filter(|r| r.enabled) else {
        return vec![false; config.methods.len()];
    };
    config
        .methods
        .iter()
        .map(|method| match &r.methods {
            Some(names) => names.iter().any(|n| n == method.name()),
            None => registry
                .methods
                .get(&method.id)
                .is_some_and(|p| p.info.kind == esegeta_plugin_api::MethodKind::Attribution),
        })
        .collect()
}

/// Whether `randomisation.models` (default: all) includes the model labelled `label`.
fn randomises_model(loaded: &Loaded, label: &str) -> bool {
    loaded
        .config
        .randomisation
        .as_ref()
        .and_then(|r| r.models.as_ref())
        .is_none_or(|models| models.iter().any(|m| m == label))
}

fn with_formats(stem: &std::path::Path, formats: Vec<Format>) -> Vec<(Format, PathBuf)> {
    formats
        .into_iter()
        .map(|f| {
            (
                f,
                PathBuf::from(format!("{}.{}", stem.display(), f.extension())),
            )
        })
        .collect()
}

/// The file name without its extension (without `.nii.gz` too).
pub fn file_stem(input: &std::path::Path) -> String {
    let file = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".nii.gz")
        .or_else(|| file.rsplit_once('.').map(|(s, _)| s))
        .unwrap_or(&file)
        .to_string()
}

/// The input's file stem, suffixed when two inputs share it.
fn unique_name(seen: &mut BTreeMap<String, usize>, input: &std::path::Path) -> String {
    let stem = file_stem(input);
    let count = seen.entry(stem.clone()).or_insert(0);
    *count += 1;
    if *count == 1 {
        stem
    } else {
        format!("{stem}-{count}")
    }
}

/// The method's formats, else the run's, else npy and png (plus nii.gz for NIfTI inputs).
fn formats(loaded: &Loaded, method: usize, input: &std::path::Path) -> Vec<Format> {
    let config = &loaded.config;
    if let Some(f) = config.methods[method]
        .outputs
        .clone()
        .or_else(|| config.output.formats.clone())
    {
        return f;
    }
    let mut f = vec![Format::Npy, Format::Png];
    if crate::model::extension(input).starts_with("nii") {
        f.push(Format::NiiGz);
    }
    f
}

/// `i/n`: the shard `i` (0-based) of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
        match parsed {
            Some((index, count)) if count >= 1 && index < count => Ok(Shard { index, count }),
            _ => Err(format!(
                "`{s}` is not a shard: use i/n with 0 <= i < n, e.g. 0/3"
            )),
        }
    }
}

impl Shard {
    /// Every n-th job from the i-th: shards are disjoint and cover the plan.
    pub fn select(self, jobs: Vec<PlannedJob>) -> Vec<PlannedJob> {
        jobs.into_iter()
            .enumerate()
            .filter(|(k, _)| k % self.count == self.index)
            .map(|(_, j)| j)
            .collect()
    }
}
