//! The cluster recipes in examples/ are checked here without a cluster: the scripts parse,
//! and an array task runs the shard its Slurm variables name (`make cluster-test` runs them on
//! a real one-node Slurm).

mod common;

use std::process::Command;

use common::*;

fn slurm(file: &str) -> std::path::PathBuf {
    fixtures().join("../../examples/slurm").join(file)
}

#[test]
fn the_slurm_scripts_parse() {
    for file in ["esegeta-array.sbatch", "submit.sh"] {
        let (ok, _, stderr) = run(Command::new("bash").arg("-n").arg(slurm(file)));
        assert!(ok, "{file}: {stderr}");
    }
}

#[test]
fn an_array_task_runs_its_shard_of_the_run() {
    let task = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new("bash");
        cmd.arg(slurm("esegeta-array.sbatch"))
            .env("ESEGETA", "echo")
            .env("CONFIG", "study.json")
            .env("SLURM_ARRAY_TASK_ID", "2")
            .env("SLURM_ARRAY_TASK_COUNT", "4");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let (ok, stdout, stderr) = run(&mut cmd);
        assert!(ok, "{stderr}");
        stdout.trim().to_string()
    };
    assert_eq!(task(&[]), "run study.json --shard 2/4");
    // A task submitted again alone says how many shards the run has.
    assert_eq!(task(&[("SHARDS", "8")]), "run study.json --shard 2/8");
}

/// The Indexed Job runs as many shards as it has completions, one per pod index.
#[test]
fn the_kubernetes_indexed_job_runs_one_shard_per_completion() {
    let yaml =
        std::fs::read_to_string(fixtures().join("../../examples/kubernetes/indexed-job.yaml"))
            .unwrap();
    let value = |key: &str| {
        yaml.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"))
            .trim()
            .to_string()
    };
    assert_eq!(value("completionMode:"), "Indexed");
    let n = value("completions:");
    assert_eq!(value("parallelism:"), n);
    assert!(
        yaml.contains(&format!("--shard ${{JOB_COMPLETION_INDEX}}/{n}")),
        "the command's shard count is not {n}"
    );
    let merge =
        std::fs::read_to_string(fixtures().join("../../examples/kubernetes/merge-job.yaml"))
            .unwrap();
    assert!(merge.contains(r#"["esegeta", "merge", "/data/out"]"#));
}
