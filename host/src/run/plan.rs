//! The plan of a run: jobs = inputs x methods x targets, in a deterministic order, and the
//! share of them that one shard runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::config::{Format, Loaded};

/// One job: one method on one input for one target.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedJob {
    /// `<input>/<method name>/target<N>`: unique in the run, stable across runs.
    pub id: String,
    pub input: PathBuf,
    /// The input's name in output paths (its file stem, made unique).
    pub input_name: String,
    pub mask: Option<PathBuf>,
    /// Index into the config's `methods`.
    pub method: usize,
    pub target: i64,
    /// Output files, by format.
    pub outputs: Vec<(Format, PathBuf)>,
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

/// Every job of the run, sorted by id.
pub fn plan(loaded: &Loaded) -> Result<Vec<PlannedJob>> {
    let config = &loaded.config;
    let folder = loaded.output_folder();
    let mut jobs = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for spec in &config.inputs {
        for input in expand(loaded, &spec.path)? {
            let input_name = unique_name(&mut names, &input);
            for (m, method) in config.methods.iter().enumerate() {
                for &target in &spec.targets {
                    let id = format!("{input_name}/{}/target{target}", method.name());
                    let stem = folder
                        .join(&input_name)
                        .join(format!("{}_target{target}", method.name()));
                    let outputs = formats(loaded, m, &input)
                        .into_iter()
                        .map(|f| {
                            (
                                f,
                                PathBuf::from(format!("{}.{}", stem.display(), f.extension())),
                            )
                        })
                        .collect();
                    let mask = spec.mask.as_ref().map(|p| loaded.resolve(p));
                    jobs.push(PlannedJob {
                        id,
                        input: input.clone(),
                        input_name: input_name.clone(),
                        mask,
                        method: m,
                        target,
                        outputs,
                    });
                }
            }
        }
    }
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(jobs)
}

/// The input's file stem (without `.nii.gz` too), suffixed when two inputs share it.
fn unique_name(seen: &mut BTreeMap<String, usize>, input: &std::path::Path) -> String {
    let file = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file
        .strip_suffix(".nii.gz")
        .or_else(|| file.rsplit_once('.').map(|(s, _)| s))
        .unwrap_or(&file)
        .to_string();
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
