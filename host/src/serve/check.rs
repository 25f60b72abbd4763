//! `POST /api/check`, and the check every run passes before it starts: the config's paths
//! must stay inside the roots, then `esegeta check`'s own checks (config::check_with, with the
//! dry run through the models) run on it, their problems split into `{path, message}`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::roots::Roots;
use crate::config::check::InvalidConfig;
use crate::config::Loaded;
use crate::plugins::Registry;

/// One problem, at a JSON path of the config (`methods[0].params.n_steps`; empty for the
/// whole config).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Parameter names whose string values are files.
const FILE_PARAMS: &[&str] = &[
    "baselines",
    "feature_mask",
    "mask",
    "ground_truth",
    "region",
];

/// Every path the config names that leaves the roots, as problems at its place.
pub fn outside_roots(config: &Value, roots: &Roots) -> Vec<Problem> {
    let mut named: Vec<(String, String)> = Vec::new();
    let mut at = |place: String, value: Option<&Value>| {
        if let Some(s) = value.and_then(Value::as_str) {
            named.push((place, s.to_string()));
        }
    };
    at("model.path".into(), config.pointer("/model/path"));
    if let Some(models) = config.get("models").and_then(Value::as_array) {
        for (i, m) in models.iter().enumerate() {
            at(format!("models[{i}].path"), m.get("path"));
        }
    }
    if let Some(inputs) = config.get("inputs").and_then(Value::as_array) {
        for (i, input) in inputs.iter().enumerate() {
            for key in ["path", "mask", "ground_truth"] {
                at(format!("inputs[{i}].{key}"), input.get(key));
            }
        }
    }
    at("output.folder".into(), config.pointer("/output/folder"));
    if let Some(methods) = config.get("methods").and_then(Value::as_array) {
        for (i, m) in methods.iter().enumerate() {
            if let Some(params) = m.get("params").and_then(Value::as_object) {
                for key in FILE_PARAMS {
                    at(format!("methods[{i}].params.{key}"), params.get(*key));
                }
            }
        }
    }
    named
        .into_iter()
        .filter_map(|(path, value)| {
            let fixed = fixed_part(&value);
            roots
                .resolve(&fixed)
                .err()
                .map(|e| Problem { path, message: e.0 })
        })
        .collect()
}

/// The part of a path before any glob or `{stem}` component: what must lie inside a root.
fn fixed_part(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .take_while(|c| !c.contains(['*', '?', '[', '{']))
        .collect();
    match parts.join("/") {
        s if s.is_empty() && path.starts_with('/') => "/".into(),
        s if s.is_empty() => ".".into(),
        s => s,
    }
}

/// Writes `config` to `file` (relative paths then resolve against the first root, as in the
/// page) and checks it as `esegeta check` does. `Ok` holds the loaded config.
pub fn check_file(
    config: &Value,
    file: &Path,
    registry: &Registry,
) -> anyhow::Result<Result<Loaded, Vec<Problem>>> {
    let text = serde_json::to_string_pretty(config)? + "\n";
    crate::io::write_atomically(file, |tmp| Ok(std::fs::write(tmp, &text)?))?;
    match crate::config::check_with(file, registry, true) {
        Ok(loaded) => Ok(Ok(loaded)),
        Err(e) => match e.downcast_ref::<InvalidConfig>() {
            Some(invalid) => Ok(Err(invalid.problems.iter().map(|p| split(p)).collect())),
            None => Ok(Err(vec![Problem {
                path: String::new(),
                message: format!("{e:#}"),
            }])),
        },
    }
}

/// `methods[0].params.n_steps: must be at least 1` into its path and message.
pub fn split(problem: &str) -> Problem {
    if let Some((path, message)) = problem.split_once(": ") {
        let is_path = !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_alphanumeric() || "_.[]-".contains(c));
        if is_path {
            return Problem {
                path: path.to_string(),
                message: message.to_string(),
            };
        }
    }
    Problem {
        path: String::new(),
        message: problem.to_string(),
    }
}

/// Where a check's scratch config goes: a hidden file in the first root, removed afterwards.
pub fn scratch_file(roots: &Roots) -> PathBuf {
    roots.base().join(format!(
        ".esegeta-gui-check-{}.json",
        super::auth::new_token()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_from_messages() {
        let p = split("methods[0].params.n_steps: -1 is less than the minimum of 1");
        assert_eq!(p.path, "methods[0].params.n_steps");
        let p = split("the config x is bad: really");
        assert_eq!(p.path, "");
    }

    #[test]
    fn fixed_part_stops_at_globs() {
        assert_eq!(fixed_part("data/*.nii.gz"), "data");
        assert_eq!(fixed_part("vessels/{stem}_mask.nii.gz"), "vessels");
        assert_eq!(fixed_part("*.png"), ".");
        assert_eq!(fixed_part("/etc/passwd"), "/etc/passwd");
    }
}
