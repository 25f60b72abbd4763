//! `esegeta run CONFIG`: plans the jobs, skips those a previous run finished, runs the rest on
//! one worker per device slot, and records every outcome in the manifest as it happens.

pub mod cancel;
mod cascade;
mod caveats;
mod child;
pub mod events;
pub mod identity;
mod journal;
mod lock;
pub mod manifest;
pub mod plan;
pub(crate) mod preprocess;
pub mod worker;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Isolation, Loaded};
use crate::plugins::Registry;
use manifest::{JobRecord, Manifest, Status};
use plan::{PlannedJob, Shard};

/// Some jobs failed or timed out; the manifest says which.
#[derive(Debug)]
pub struct JobsFailed {
    pub failed: usize,
    pub timed_out: usize,
    pub manifest: PathBuf,
}

impl std::fmt::Display for JobsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} job(s) failed and {} timed out; see {}",
            self.failed,
            self.timed_out,
            self.manifest.display()
        )
    }
}

impl std::error::Error for JobsFailed {}

/// What a run did, for its summary line.
pub struct Summary {
    pub done: usize,
    pub resumed: usize,
    pub manifest: PathBuf,
}

/// Runs the checked config (or one shard of it).
pub fn run(
    registry: &Registry,
    loaded: &Loaded,
    shard: Option<Shard>,
    plugin_dirs: &[PathBuf],
    events: &events::Events,
) -> Result<Summary> {
    let folder = loaded.output_folder();
    std::fs::create_dir_all(&folder)?;
    let manifest_path = folder.join(manifest::file_name(shard));
    let _lock = lock::acquire(&manifest_path)?;
    let mut manifest = Manifest::load_or_new(&manifest_path, &loaded.path)?;
    manifest.config = loaded.path.clone();
    manifest.config_as_run = loaded.raw.clone();
    manifest.shard = shard.map(|s| format!("{}/{}", s.index, s.count));
    let mut jobs = plan::plan(loaded, &plan::randomised_methods(loaded, registry))?;
    if let Some(shard) = shard {
        jobs = shard.select(jobs);
    }
    let identities = identities(loaded, registry, &jobs);
    let dropped = manifest.jobs.len();
    manifest.jobs.retain(|r| identities.contains_key(&r.id));
    if manifest.jobs.len() < dropped {
        tracing::info!(
            "{} record(s) of jobs this config no longer plans left the manifest (their files stay)",
            dropped - manifest.jobs.len()
        );
    }
    let mut reruns = HashMap::new();
    let mut resumed = 0;
    let mut todo = Vec::new();
    for job in jobs {
        match manifest.up_to_date(&job.id, &identities[&job.id]) {
            Ok(()) => resumed += 1,
            Err(reasons) => {
                if !reasons.is_empty() {
                    tracing::info!("{}: runs again: {}", job.id, reasons.join("; "));
                    reruns.insert(job.id.clone(), reasons);
                }
                todo.push(job);
            }
        }
    }
    tracing::info!(
        "{} job(s) to run ({} again, their results stale), {resumed} finished by an earlier run",
        todo.len(),
        reruns.len()
    );
    if !reruns.is_empty() {
        eprintln!(
            "{} job(s) finished by an earlier run will run again: what they were made with has \
             changed (`rerun_because` in the manifest says what)",
            reruns.len()
        );
    }
    events.planned(
        &todo.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        resumed,
    );
    let manifest = Mutex::new(journal::ManifestWriter::new(manifest, &manifest_path)?);
    let bar = progress_bar(todo.len());
    let queue = Mutex::new(VecDeque::from(todo));
    let slots = slots(loaded);
    let threads =
        (std::thread::available_parallelism().map_or(1, |n| n.get()) / slots.len()).max(1);
    std::thread::scope(|scope| {
        for device in &slots {
            let (queue, manifest, bar) = (&queue, &manifest, &bar);
            let (identities, reruns) = (&identities, &reruns);
            scope.spawn(move || {
                tch::set_num_threads(threads as i32);
                let mut models = worker::Models::default();
                while let Some(job) = next_job(queue, loaded, device) {
                    events.job_started(&job.id, device);
                    let record = match worker::settings(loaded, &job, device) {
                        Ok(settings) if loaded.config.execution.isolation == Isolation::Process => {
                            child::run_in_child(loaded, &job, &settings, plugin_dirs, threads)
                        }
                        Ok(settings) => {
                            // The bar's message follows the job's own progress (one line for
                            // all workers: the latest report wins).
                            let report = |done: u64, total: u64| {
                                events.progress(&job.id, done, total);
                                bar.set_message(format!("{}: {done}/{total}", job.id))
                            };
                            worker::run_in_process(
                                registry,
                                loaded,
                                &job,
                                &settings,
                                &mut models,
                                Some(&report),
                            )
                        }
                        Err(e) => unreachable_settings(&job, e),
                    };
                    let mut record = record;
                    record.identity = identities[&job.id].clone();
                    record.rerun_because = reruns.get(&job.id).cloned().unwrap_or_default();
                    tracing::info!("{}", line(&record));
                    events.job_finished(&record);
                    // With events on, stdout carries only the event lines.
                    if events.enabled() {
                        // job_finished above said it.
                    } else if bar.is_hidden() {
                        println!("{}", line(&record));
                    } else {
                        bar.println(line(&record));
                    }
                    bar.inc(1);
                    let mut m = manifest.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = m.record(&record) {
                        tracing::error!("cannot save the manifest: {e:#}");
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let manifest = manifest.into_inner().unwrap_or_else(|p| p.into_inner());
    let (failed, timed_out, done, cancelled) = (
        manifest.count(Status::Failed),
        manifest.count(Status::TimedOut),
        manifest.count(Status::Done),
        manifest.count(Status::Cancelled),
    );
    manifest.finish()?;
    // A shard's report would show a share of the run: `esegeta merge` writes the whole one.
    if shard.is_none() {
        write_report(&folder);
    }
    if cancel::stopped() {
        return Err(cancel::RunStopped {
            cancelled,
            manifest: manifest_path,
        }
        .into());
    }
    outcome(failed, timed_out, done, resumed, manifest_path)
}

/// Each job's identity; a file that cannot be read gives an identity naming the error (the
/// job then fails on the same file when it runs, and never matches a finished one).
fn identities(
    loaded: &Loaded,
    registry: &Registry,
    jobs: &[PlannedJob],
) -> HashMap<String, serde_json::Value> {
    let mut hashes = identity::FileHashes::default();
    jobs.iter()
        .map(|job| {
            let id = identity::identity(loaded, registry, job, &mut hashes)
                .unwrap_or_else(|e| serde_json::json!({ "unidentified": format!("{e:#}") }));
            (job.id.clone(), id)
        })
        .collect()
}

/// The run's report; a report that cannot be written costs the report, never the run.
pub fn write_report(folder: &Path) {
    match crate::report::write(folder) {
        Ok(path) => tracing::info!("wrote {}", path.display()),
        Err(e) => {
            tracing::warn!("cannot write the report: {e:#}");
            eprintln!("warning: cannot write the report: {e:#}");
        }
    }
}

fn outcome(
    failed: usize,
    timed_out: usize,
    done: usize,
    resumed: usize,
    path: PathBuf,
) -> Result<Summary> {
    if failed + timed_out > 0 {
        return Err(JobsFailed {
            failed,
            timed_out,
            manifest: path,
        }
        .into());
    }
    Ok(Summary {
        done,
        resumed,
        manifest: path,
    })
}

/// `cpu`, `cuda:0`, ... once per worker.
fn slots(loaded: &Loaded) -> Vec<String> {
    let execution = &loaded.config.execution;
    execution
        .devices
        .iter()
        .flat_map(|d| std::iter::repeat_n(d.clone(), execution.workers_per_device))
        .collect()
}

/// The first queued job this slot may run (a method may pin its device).
fn next_job(
    queue: &Mutex<VecDeque<PlannedJob>>,
    loaded: &Loaded,
    device: &str,
) -> Option<PlannedJob> {
    if cancel::stopped() {
        return None;
    }
    let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
    let allowed = |j: &PlannedJob| {
        loaded.config.methods[j.method]
            .device
            .as_deref()
            .is_none_or(|d| d == device || !is_slot(loaded, d))
    };
    let index = queue.iter().position(allowed)?;
    queue.remove(index)
}

fn is_slot(loaded: &Loaded, device: &str) -> bool {
    loaded.config.execution.devices.iter().any(|d| d == device)
}

/// Settings were checked with the config; should they still fail, the job fails.
fn unreachable_settings(job: &PlannedJob, e: anyhow::Error) -> JobRecord {
    JobRecord {
        id: job.id.clone(),
        input: job.input.clone(),
        model: job.model_label.clone(),
        method: String::new(),
        name: String::new(),
        params: serde_json::Value::Null,
        target: job.target,
        device: String::new(),
        precision: String::new(),
        status: Status::Failed,
        error: Some(format!("{e:#}")),
        duration_s: 0.0,
        peak_rss_mib: 0.0,
        files: Vec::new(),
        extras: serde_json::Value::Null,
        precision_fallback: false,
        warnings: Vec::new(),
        identity: serde_json::Value::Null,
        rerun_because: Vec::new(),
    }
}

fn line(r: &JobRecord) -> String {
    let status = match r.status {
        Status::Done => "done".to_string(),
        Status::Failed => format!("FAILED: {}", r.error.as_deref().unwrap_or("")),
        Status::TimedOut => format!("TIMED OUT: {}", r.error.as_deref().unwrap_or("")),
        Status::Skipped => "skipped".to_string(),
        Status::Cancelled => "CANCELLED (the run was stopped)".to_string(),
    };
    format!("{:<60} {:>7.2}s  {status}", r.id, r.duration_s)
}

fn progress_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} jobs, {elapsed} elapsed, ~{eta} left  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The run folder of a manifest file, for `esegeta merge`.
pub fn merge(folder: &Path) -> Result<Manifest> {
    let merged = manifest::merge(folder)?;
    write_report(folder);
    Ok(merged)
}
