//! `esegeta run --events`: the run's progress as one JSON object per line on stdout (what
//! `esegeta serve` reads and forwards to the page as server-sent events). Each line is
//! `{"event": "planned" | "job_started" | "progress" | "job_finished", ...}`; the run's end
//! is the process's exit.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::manifest::JobRecord;

/// Progress lines of one job come at most this often (a method may report every batch).
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Writes event lines when enabled; does nothing otherwise.
pub struct Events {
    enabled: bool,
    last_progress: Mutex<Option<Instant>>,
}

impl Events {
    pub fn new(enabled: bool) -> Self {
        Events {
            enabled,
            last_progress: Mutex::new(None),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The jobs to run, and how many an earlier run finished.
    pub fn planned(&self, todo: &[String], resumed: usize) {
        self.emit(json!({"event": "planned", "jobs": todo, "resumed": resumed}));
    }

    pub fn job_started(&self, id: &str, device: &str) {
        self.emit(json!({"event": "job_started", "id": id, "device": device}));
    }

    /// A job's own progress (`done` of `total` steps), throttled; the last step always goes.
    pub fn progress(&self, id: &str, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        {
            let mut last = self.last_progress.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) || done >= total;
            if !due {
                return;
            }
            *last = Some(Instant::now());
        }
        self.emit(json!({"event": "progress", "id": id, "done": done, "total": total}));
    }

    pub fn job_finished(&self, record: &JobRecord) {
        // Checked before the record is copied into a JSON tree, once per job of every run.
        if self.enabled {
            self.emit(json!({"event": "job_finished", "record": record}));
        }
    }

    fn emit(&self, event: Value) {
        if !self.enabled {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{event}");
        let _ = out.flush();
    }
}
