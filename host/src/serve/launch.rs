//! Runs one config as `esegeta run --events` in a child process (its own process group, so
//! that a cancel also ends `isolation: process` workers), after the runs queued before it,
//! and turns its event lines into the run's events. Closing the page does not stop it.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::runs::{Run, RunStatus};
use super::state::AppState;

/// Starts the run's task; it waits for its turn in the queue.
pub fn spawn(state: AppState, run: Arc<Run>) {
    tokio::spawn(async move {
        let Ok(_turn) = state.runs.queue.acquire().await else {
            return run.end(
                RunStatus::Failed,
                Some("the server is shutting down".into()),
            );
        };
        {
            let mut progress = run.lock();
            if progress.cancel_asked {
                // Cancelled while queued: `cancel` has ended it already.
                return;
            }
            progress.status = RunStatus::Running;
        }
        match execute(&state, &run).await {
            Ok(status) => {
                let error = match status {
                    RunStatus::Failed => run.lock().error.clone(),
                    _ => None,
                };
                run.end(status, error)
            }
            Err(e) => run.end(RunStatus::Failed, Some(format!("{e:#}"))),
        }
    });
}

async fn execute(state: &AppState, run: &Run) -> anyhow::Result<RunStatus> {
    let mut command = tokio::process::Command::new(&state.exe);
    for dir in state.plugin_dirs.iter() {
        command.arg("--plugins").arg(dir);
    }
    command
        .arg("run")
        .arg("--events")
        .arg(&run.config_file)
        .current_dir(state.roots.base())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {} run: {e}", state.exe.display()))?;
    {
        let mut progress = run.lock();
        progress.pid = child.id();
        if progress.cancel_asked {
            // Asked between its turn and its start.
            drop(progress);
            cancel(run);
        }
    }
    run.emit(json!({"event": "run_started", "id": run.id}));
    let stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_string(&mut text).await;
        }
        text
    });
    if let Some(stdout) = stdout {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                if event.get("event").is_some() {
                    run.emit(event);
                }
            }
        }
    }
    let pid = child.id();
    let exit = child.wait().await?;
    remove_left_lock(&run.folder, pid);
    let stderr = errors.await.unwrap_or_default();
    if run.lock().cancel_asked {
        return Ok(RunStatus::Cancelled);
    }
    if exit.success() {
        return Ok(RunStatus::Finished);
    }
    let message: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("  "))
        .collect();
    run.lock().error = Some(match message.is_empty() {
        true => format!("the run ended with {exit}"),
        false => message.join("\n"),
    });
    Ok(RunStatus::Failed)
}

/// Asks the run to stop: a queued one ends now and never starts, a running one's process
/// group is ended.
pub fn cancel(run: &Run) {
    let mut progress = run.lock();
    progress.cancel_asked = true;
    if progress.status == RunStatus::Queued {
        drop(progress);
        return run.end(RunStatus::Cancelled, None);
    }
    if let Some(pid) = progress.pid {
        // SAFETY: sends a signal to the process group this server started.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGTERM);
        }
    }
}

/// A run ended by a signal leaves its lock (held by the child's process id): stale now.
fn remove_left_lock(folder: &std::path::Path, pid: Option<u32>) {
    let lock: PathBuf = folder.join("results.json.lock");
    let holder = std::fs::read_to_string(&lock).unwrap_or_default();
    let ours = pid.is_some_and(|p| holder.split_whitespace().next() == Some(&p.to_string()));
    if ours {
        let _ = std::fs::remove_file(lock);
    }
}
