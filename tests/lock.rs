//! One run at a time per manifest: a second `esegeta run` into a folder whose manifest another
//! live run holds is refused, naming the holder; a lock left by a run that has ended is taken
//! over; a run leaves no lock behind.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

fn config(dir: &Path) -> std::path::PathBuf {
    let config = json!({
        "model": {"path": fixture("classifier2d.pt")},
        "inputs": [{"path": fixture("classifier2d_x.npy"), "targets": [0]}],
        "methods": [{"id": "captum.saliency"}],
        "output": {"folder": "out", "formats": ["npy"]}
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_run_into_a_folder_another_live_run_holds_is_refused() {
    let dir = scratch("lock-live");
    let config = config(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let mut holder = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let lock = dir.join("out/results.json.lock");
    std::fs::write(&lock, format!("{} {}", holder.id(), host())).unwrap();
    let e = fails(esegeta().arg("run").arg(&config));
    holder.kill().unwrap();
    let _ = holder.wait();
    assert!(
        e.contains(&format!("another esegeta run (process {}", holder.id()))
            && e.contains("results.json.lock"),
        "{e}"
    );
    assert!(!dir.join("out/results.json").exists(), "nothing written");
    assert!(lock.exists(), "the holder's lock stays");
}

#[test]
fn a_lock_left_by_an_ended_run_is_taken_over_and_a_run_leaves_none() {
    let dir = scratch("lock-stale");
    let config = config(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    // A process id that has ended: a child that has been waited for.
    let mut ended = std::process::Command::new("true").spawn().unwrap();
    ended.wait().unwrap();
    let lock = dir.join("out/results.json.lock");
    std::fs::write(&lock, format!("{} {}", ended.id(), host())).unwrap();
    let (ok, _, stderr) = run(esegeta().arg("run").arg(&config));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("taking it over"), "{stderr}");
    assert!(dir.join("out/results.json").exists());
    assert!(!lock.exists(), "the run removed its lock");
}
