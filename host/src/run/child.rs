//! Isolation: a job in a child `esegeta job` process, killed at its deadline, so that a crash
//! (even a segfault in a plugin) or a hang costs that job only.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::manifest::JobRecord;
use super::plan::PlannedJob;
use super::worker::{record, Settings};
use crate::config::Loaded;

/// Runs `job` in a child `esegeta job` process and kills it at the deadline; a crash or a
/// hang costs this job only.
pub fn run_in_child(
    loaded: &Loaded,
    job: &PlannedJob,
    settings: &Settings,
    plugin_dirs: &[PathBuf],
    threads: usize,
) -> JobRecord {
    let started = Instant::now();
    let outcome = child(loaded, job, settings, plugin_dirs, threads);
    match outcome {
        Ok(record) => record,
        Err((e, timed_out)) => record(
            loaded,
            job,
            settings,
            started.elapsed(),
            0.0,
            Err(e),
            timed_out,
        ),
    }
}

fn child(
    loaded: &Loaded,
    job: &PlannedJob,
    settings: &Settings,
    plugin_dirs: &[PathBuf],
    threads: usize,
) -> Result<JobRecord, (anyhow::Error, bool)> {
    let exe = std::env::current_exe()
        .map_err(|e| (anyhow!("cannot find the esegeta binary: {e}"), false))?;
    let mut cmd = Command::new(exe);
    for dir in plugin_dirs {
        cmd.arg("--plugins").arg(dir);
    }
    cmd.arg("job").arg(&loaded.path).args([
        "--id",
        &job.id,
        "--device",
        &settings.device_name,
        "--threads",
        &threads.to_string(),
    ]);
    let mut process = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| (anyhow!("cannot start a worker process: {e}"), false))?;
    let stdout = drain(process.stdout.take());
    let stderr = drain(process.stderr.take());
    let deadline = settings.timeout.map(|t| Instant::now() + t);
    let status = loop {
        match process.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if super::cancel::stopped() => {
                let _ = process.kill();
                let _ = process.wait();
                return Err((anyhow!("the worker process was ended"), false));
            }
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = process.kill();
                let _ = process.wait();
                let timeout = settings.timeout.unwrap_or_default();
                return Err((
                    anyhow!("the worker process was killed at the {timeout:?} deadline"),
                    true,
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err((anyhow!("lost the worker process: {e}"), false)),
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    if let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) {
        if let Ok(record) = serde_json::from_str::<JobRecord>(line) {
            return Ok(record);
        }
    }
    let last = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .last()
        .unwrap_or("")
        .to_string();
    Err((
        anyhow!(
            "the worker process died ({}){}",
            describe(status),
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        ),
        false,
    ))
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(11)) => "signal 11, a segmentation fault".to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => "unknown status".to_string(),
    }
}
