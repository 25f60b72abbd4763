//! Stopping a run part-way: SIGTERM (what `esegeta serve` sends when the page cancels a run)
//! or Ctrl-C cancels the running jobs at their next cancellation check (a child process of
//! `isolation: process` is ended), records them as `cancelled`, starts no other job, writes
//! the manifest and the report, and ends with exit code 5. Running the same command again
//! redoes the cancelled jobs and the ones never started, and keeps the finished ones. A second
//! signal ends the process at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Whether a stop signal has arrived.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe calls here: an atomic swap, signal() and raise().
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: restores the default action and re-raises, from the handler itself.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

/// Catches SIGTERM and SIGINT for this process (`esegeta run` only: a worker process of
/// `isolation: process` keeps the default, and its parent records it).
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: sets two signals' dispositions to a handler that only touches an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// The run ended early because it was asked to stop.
#[derive(Debug)]
pub struct RunStopped {
    pub cancelled: usize,
    pub manifest: PathBuf,
}

impl std::fmt::Display for RunStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the run was stopped (SIGTERM or Ctrl-C): {} running job(s) recorded as cancelled \
             in {}, the rest not started; run the same command again to finish it (finished \
             jobs are kept)",
            self.cancelled,
            self.manifest.display()
        )
    }
}

impl std::error::Error for RunStopped {}
