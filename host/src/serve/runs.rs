//! The runs `esegeta serve` knows: those it started (queued, running or ended) and those of
//! earlier servers, found again from the configs it left in the first root
//! (`.esegeta-gui-run-*.json`) and their folders' manifests. Each keeps its events, so a page
//! that opens late (or again) replays them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Semaphore};

use super::roots::Roots;
use crate::run::manifest::Manifest;

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Finished,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn ended(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Cancelled)
    }
}

/// What changes while a run goes.
#[derive(Debug)]
pub struct Progress {
    pub status: RunStatus,
    /// Every event so far, in order (replayed to late listeners).
    pub events: Vec<Value>,
    /// The process group of the running `esegeta run`.
    pub pid: Option<u32>,
    pub cancel_asked: bool,
    pub error: Option<String>,
}

pub struct Run {
    pub id: String,
    pub config_file: PathBuf,
    /// The run's output folder (real path, inside the roots).
    pub folder: PathBuf,
    pub progress: Mutex<Progress>,
    pub sender: broadcast::Sender<Value>,
}

impl Run {
    pub fn new(id: String, config_file: PathBuf, folder: PathBuf, status: RunStatus) -> Self {
        Run {
            id,
            config_file,
            folder,
            progress: Mutex::new(Progress {
                status,
                events: Vec::new(),
                pid: None,
                cancel_asked: false,
                error: None,
            }),
            sender: broadcast::channel(4096).0,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records and sends one event.
    pub fn emit(&self, event: Value) {
        let mut progress = self.lock();
        progress.events.push(event.clone());
        let _ = self.sender.send(event);
    }

    /// Ends the run with `status` and says so to every listener.
    pub fn end(&self, status: RunStatus, error: Option<String>) {
        {
            let mut progress = self.lock();
            progress.status = status;
            progress.error = error.clone();
            progress.pid = None;
        }
        self.emit(json!({"event": "run_finished", "status": status, "error": error}));
    }

    /// `GET /api/runs/{id}`: status, planned jobs and the manifest so far.
    pub fn describe(&self, roots: &Roots) -> Value {
        let progress = self.lock();
        let planned = progress
            .events
            .iter()
            .find(|e| e["event"] == "planned")
            .map(|e| e["jobs"].clone())
            .unwrap_or(Value::Array(Vec::new()));
        let manifest =
            Manifest::read_json(&self.folder.join("results.json")).unwrap_or(Value::Null);
        json!({
            "id": self.id,
            "status": progress.status,
            "error": progress.error,
            "folder": roots.display(&self.folder),
            "config": crate::config::read(&self.config_file).unwrap_or(Value::Null),
            "planned": planned,
            "manifest": manifest,
        })
    }
}

/// Every known run, and the queue that lets one run at a time.
pub struct Runs {
    pub runs: Mutex<BTreeMap<String, Arc<Run>>>,
    pub queue: Semaphore,
}

impl Runs {
    /// The runs earlier servers started in `roots`' first folder.
    pub fn recover(roots: &Roots) -> Self {
        let mut runs = BTreeMap::new();
        let entries = std::fs::read_dir(roots.base())
            .into_iter()
            .flatten()
            .flatten();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = name
                .strip_prefix(CONFIG_PREFIX)
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if let Some(run) = earlier_run(id, &entry.path(), roots) {
                runs.insert(id.to_string(), Arc::new(run));
            }
        }
        Runs {
            runs: Mutex::new(runs),
            queue: Semaphore::new(1),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Run>> {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Run>> {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds the run unless one that has not ended writes to the same folder (then that one's id).
    pub fn insert_unless_busy(&self, run: Arc<Run>) -> Result<(), String> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(busy) = runs
            .values()
            .find(|r| r.folder == run.folder && !r.lock().status.ended())
        {
            return Err(busy.id.clone());
        }
        runs.insert(run.id.clone(), run);
        Ok(())
    }
}

/// The GUI's run configs are `<first root>/.esegeta-gui-run-<id>.json`.
pub const CONFIG_PREFIX: &str = ".esegeta-gui-run-";

/// A new run id: sortable by start time, unique.
pub fn new_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}-{}", &super::auth::new_token()[..6])
}

fn earlier_run(id: &str, config_file: &Path, roots: &Roots) -> Option<Run> {
    let config = crate::config::read(config_file).ok()?;
    let folder = roots
        .resolve(config.pointer("/output/folder")?.as_str()?)
        .ok()?;
    let manifest = Manifest::read_json(&folder.join("results.json"));
    let (status, error) = match &manifest {
        Some(m) => {
            let jobs = m["jobs"].as_array().cloned().unwrap_or_default();
            match jobs
                .iter()
                .any(|j| j["status"] != "done" && j["status"] != "skipped")
            {
                true => (
                    RunStatus::Failed,
                    Some("some jobs failed; see the manifest".to_string()),
                ),
                false => (RunStatus::Finished, None),
            }
        }
        None => (
            RunStatus::Failed,
            Some("this run left no manifest: it ended before its first job".to_string()),
        ),
    };
    let run = Run::new(id.to_string(), config_file.to_path_buf(), folder, status);
    run.lock().error = error;
    run.lock()
        .events
        .push(json!({"event": "run_finished", "status": status}));
    Some(run)
}
