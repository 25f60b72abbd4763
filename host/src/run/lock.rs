//! One writer per manifest: a run holds `<manifest>.lock` (its process id and host) in the
//! output folder while it runs, so that a second `esegeta run` of the same config into the
//! same folder is refused instead of both rewriting the manifest and one losing the other's
//! entries. Shards write their own manifests and take their own locks, so they run side by
//! side. A lock whose process has ended on this host is stale and taken over, with a warning.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The held lock; removed when dropped, whether the run ends well or not.
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes the lock of `manifest`, or says which process holds it.
pub fn acquire(manifest: &Path) -> Result<RunLock> {
    let path = PathBuf::from(format!("{}.lock", manifest.display()));
    let me = format!("{} {}", std::process::id(), host());
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(me.as_bytes())
                    .with_context(|| format!("cannot write the lock {}", path.display()))?;
                return Ok(RunLock { path });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                if !is_stale(&holder, &path) {
                    bail!(
                        "another esegeta run (process {}) is writing {} now; wait for it to end, \
                         or give this run another output.folder. If no such run exists, delete \
                         {}",
                        holder.trim(),
                        manifest.display(),
                        path.display()
                    );
                }
                tracing::warn!(
                    "{} was left by a run that has ended (process {}); taking it over",
                    path.display(),
                    holder.trim()
                );
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create the lock {}", path.display()))
            }
        }
    }
    bail!(
        "cannot take the lock {}: another run keeps taking it",
        path.display()
    )
}

/// Whether the lock's holder (`PID HOST`) is a process of this host that no longer runs. A
/// holder on another host (a shared file system) cannot be checked from here: not stale.
fn is_stale(holder: &str, path: &Path) -> bool {
    let mut parts = holder.split_whitespace();
    let (Some(pid), Some(on)) = (
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next(),
    ) else {
        // Unreadable or half-written: a run that is starting this instant, or one that died
        // between creating and writing it; the second once the file is a few seconds old.
        return age(path).is_some_and(|a| a > std::time::Duration::from_secs(10));
    };
    on == host() && !Path::new(&format!("/proc/{pid}")).exists()
}

fn age(path: &Path) -> Option<std::time::Duration> {
    std::fs::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
