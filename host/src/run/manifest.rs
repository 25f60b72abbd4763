//! `results.json`: every job of a run with its status, timing, files and extras. A run in
//! progress appends each finished job to a journal beside it and rewrites it atomically when
//! due (run/journal.rs); loading replays the journal, so an interrupted run loses nothing and
//! resumes from it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::io::write_atomically;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    Failed,
    TimedOut,
    /// Not run: the previous run had finished it (resume) or the run stopped first.
    Skipped,
    /// Running when the run was stopped (SIGTERM, Ctrl-C; `esegeta serve`'s cancel): the next
    /// run of the config redoes it.
    Cancelled,
}

/// One job's outcome.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JobRecord {
    pub id: String,
    pub input: PathBuf,
    /// The model's label (manifests of single-model runs before labels: empty).
    #[serde(default)]
    pub model: String,
    pub method: String,
    pub name: String,
    pub params: Value,
    pub target: i64,
    pub device: String,
    pub precision: String,
    pub status: Status,
    #[serde(default)]
    pub error: Option<String>,
    pub duration_s: f64,
    /// Peak resident memory of the process that ran the job, in MiB.
    pub peak_rss_mib: f64,
    pub files: Vec<PathBuf>,
    #[serde(default)]
    pub extras: Value,
    /// The reduced-precision map held NaN or inf, so it was recomputed in fp32.
    #[serde(default)]
    pub precision_fallback: bool,
    /// Where the map means less than its name says (a rule that acted on no node, a large
    /// convergence delta, an all-zero map, an output format skipped): one sentence each,
    /// also logged and shown in the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the result depends on (run/identity.rs): resume skips the job only while this is
    /// unchanged.
    #[serde(default)]
    pub identity: Value,
    /// Why this job ran again although an earlier run had finished it: each changed part of
    /// its identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rerun_because: Vec<String>,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Manifest {
    /// The config file of the latest run into this folder.
    pub config: PathBuf,
    /// That config's content as it was run (each job's `identity` says what its own map was
    /// made with, also for jobs finished by earlier runs).
    #[serde(default)]
    pub config_as_run: Value,
    #[serde(default)]
    pub shard: Option<String>,
    pub jobs: Vec<JobRecord>,
}

impl Manifest {
    /// The manifest at `path`, or an empty one when there is none yet, with the records its
    /// journal holds (jobs that finished after the file was last rewritten) replayed onto it.
    pub fn load_or_new(path: &Path, config: &Path) -> Result<Self> {
        let mut manifest = if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not an esegeta manifest; move it away to start the run afresh",
                    path.display()
                )
            })?
        } else {
            Manifest {
                config: config.to_path_buf(),
                ..Default::default()
            }
        };
        // Written sorted; sorted again in case a person or another tool edited the file.
        manifest.jobs.sort_by(|a, b| a.id.cmp(&b.id));
        manifest.jobs.dedup_by(|a, b| a.id == b.id);
        manifest.replay(&super::journal::journal_path(path))?;
        Ok(manifest)
    }

    /// The manifest at `path` with its journal replayed, as JSON: what a reader outside the
    /// run (the GUI) shows. `None` when there is neither.
    pub fn read_json(path: &Path) -> Option<Value> {
        if !path.exists() && !super::journal::journal_path(path).exists() {
            return None;
        }
        let manifest = Manifest::load_or_new(path, Path::new("")).ok()?;
        serde_json::to_value(manifest).ok()
    }

    /// Records appended to the journal at `path`, one per line. A line that does not parse is
    /// the one a kill tore (a record is one write): its job runs again.
    fn replay(&mut self, path: &Path) -> Result<()> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match serde_json::from_str::<JobRecord>(line) {
                Ok(record) => self.record(record),
                Err(e) => tracing::warn!(
                    "{} line {}: not a whole job record ({e}); that job runs again",
                    path.display(),
                    n + 1
                ),
            }
        }
        Ok(())
    }

    /// The record of a finished job whose files are all still there.
    pub fn finished(&self, id: &str) -> Option<&JobRecord> {
        self.jobs
            .iter()
            .find(|r| r.id == id && r.status == Status::Done && r.files.iter().all(|f| f.is_file()))
    }

    /// Whether the job need not run again: finished, its files there, and made with exactly
    /// `identity`. Otherwise `Err` with the reasons to give when an earlier result exists
    /// (empty when there is none to replace).
    pub fn up_to_date(&self, id: &str, identity: &Value) -> Result<(), Vec<String>> {
        match self.finished(id) {
            Some(r) if &r.identity == identity => Ok(()),
            Some(r) => Err(super::identity::differences(&r.identity, identity)),
            None => Err(Vec::new()),
        }
    }

    /// Replaces the job's record (or adds it), keeping records sorted by id.
    pub fn record(&mut self, record: JobRecord) {
        match self.jobs.binary_search_by(|r| r.id.cmp(&record.id)) {
            Ok(i) => self.jobs[i] = record,
            Err(i) => self.jobs.insert(i, record),
        }
    }

    /// Streamed to the file, not built as one string first, which for a long run is
    /// megabytes allocated and freed.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomically(path, |tmp| {
            let mut file = std::io::BufWriter::with_capacity(64 << 10, std::fs::File::create(tmp)?);
            serde_json::to_writer_pretty(&mut file, self)?;
            std::io::Write::flush(&mut file)?;
            Ok(())
        })
    }
}

/// The manifest's file name: `results.json`, or one per shard.
pub fn file_name(shard: Option<super::plan::Shard>) -> String {
    match shard {
        None => "results.json".to_string(),
        Some(s) => format!("results.shard-{}-of-{}.json", s.index, s.count),
    }
}

/// Joins the shards' manifests in `folder` into its `results.json`.
pub fn merge(folder: &Path) -> Result<Manifest> {
    let mut shards: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("cannot read the run folder {}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("results.shard-") && n.ends_with(".json"))
        })
        .collect();
    shards.sort();
    if shards.is_empty() {
        bail!(
            "{} holds no shard manifests (results.shard-*.json) to merge",
            folder.display()
        );
    }
    let mut merged = Manifest::default();
    for path in &shards {
        let shard = Manifest::load_or_new(path, Path::new(""))?;
        merged.config = shard.config;
        merged.config_as_run = shard.config_as_run;
        for record in shard.jobs {
            merged.record(record);
        }
    }
    merged.save(&folder.join("results.json"))?;
    Ok(merged)
}
