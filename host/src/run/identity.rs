//! What a job's result depends on, as one canonical JSON object: its identity. Resume skips a
//! finished job only when the identity it was run with equals the one the run would use now,
//! so that an edited config, a retrained model or a rebuilt plugin can never leave a stale map
//! behind; when they differ the job is re-run and the manifest says what changed.
//!
//! Files enter by content (SHA-256), not by name: the model (with the external data beside
//! an ONNX file), the input, the wrapper's region, the ground truth, every file a parameter
//! names (baselines, feature masks), and the plugin that runs the method. The device is left
//! out on purpose: moving a run from one GPU to another should not redo it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::plan::PlannedJob;
use super::worker::{model_config, settings};
use crate::config::Loaded;
use crate::plugins::Registry;
use crate::task::{TaskKind, WrapperKind};

/// SHA-256 of files, each read once per run however many jobs name it.
#[derive(Default)]
pub struct FileHashes {
    known: HashMap<PathBuf, String>,
}

impl FileHashes {
    /// The hex SHA-256 of the file's bytes.
    pub fn of(&mut self, path: &Path) -> Result<String> {
        if let Some(h) = self.known.get(path) {
            return Ok(h.clone());
        }
        let mut file = std::fs::File::open(path)
            .with_context(|| format!("cannot read {} to identify the job", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.known.insert(path.to_path_buf(), hex.clone());
        Ok(hex)
    }

    /// A model file and the external data an ONNX exporter writes beside it
    /// (`model.onnx.data`, or any `model.onnx.*` sibling), by name.
    fn model(&mut self, path: &Path) -> Result<Value> {
        let mut parts = Map::new();
        parts.insert("file".into(), json!(self.of(path)?));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let (Some(name), Ok(entries)) =
            (name, std::fs::read_dir(folder.unwrap_or(Path::new("."))))
        {
            let mut siblings: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&format!("{name}.")))
                })
                .collect();
            siblings.sort();
            for sibling in siblings {
                let key = sibling
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                parts.insert(key, json!(self.of(&sibling)?));
            }
        }
        Ok(Value::Object(parts))
    }
}

/// The identity of `job` in this run (see the module comment).
pub fn identity(
    loaded: &Loaded,
    registry: &Registry,
    job: &PlannedJob,
    hashes: &mut FileHashes,
) -> Result<Value> {
    let config = &loaded.config;
    let method = &config.methods[job.method];
    let model = model_config(loaded, job.model)?;
    // The slot's device does not change what the settings below take from it.
    let settings = settings(loaded, job, "cpu")?;
    let plugin = match registry.methods.get(&method.id) {
        Some(p) => json!(hashes.of(&registry.plugins[p.plugin].path)?),
        None => Value::Null,
    };
    let file = |hashes: &mut FileHashes, p: &Option<PathBuf>| -> Result<Value> {
        p.as_ref()
            .map(|p| hashes.of(p).map(Value::from))
            .transpose()
            .map(|v| v.unwrap_or(Value::Null))
    };
    let mut id = json!({
        "esegeta": env!("CARGO_PKG_VERSION"),
        "method": method.id,
        "plugin": plugin,
        "params": method.params,
        "param_files": param_files(loaded, &method.params, hashes)?,
        "layer": method.layer,
        "target": job.target,
        "model": {
            "content": hashes.model(&loaded.resolve(&model.path))?,
            "task": model.task,
            // A segmentation's default wrapper is argmax: naming it changes nothing.
            "wrapper": match model.task {
                TaskKind::Segmentation => Some(model.wrapper.unwrap_or(WrapperKind::Argmax)),
                TaskKind::Classification => None,
            },
            "mask_mode": model.mask_mode,
            "output_index": model.output_index.unwrap_or(0),
            "output": model.output,
        },
        "input": hashes.of(&job.input)?,
        "mask": file(hashes, &job.mask)?,
        "ground_truth": file(hashes, &job.ground_truth)?,
        "preprocessing": config.preprocessing,
        "patching": settings.patching,
        "precision": settings.precision,
        "seed": config.execution.seed,
        "memory_budget_mb": config.execution.memory_budget_mb,
        "outputs": job.outputs.iter().map(|(f, _)| f.extension()).collect::<Vec<_>>(),
    });
    if job.randomisation {
        id["randomisation"] = json!(config.randomisation);
    }
    Ok(id)
}

/// The hashes of the files that string parameters name (baselines, feature masks, ...), by
/// the parameter's JSON pointer: a new baseline file under the same name changes the map.
fn param_files(loaded: &Loaded, params: &Value, hashes: &mut FileHashes) -> Result<Value> {
    let mut found = Map::new();
    let mut stack = vec![(String::new(), params)];
    while let Some((at, value)) = stack.pop() {
        match value {
            Value::String(s) => {
                let path = loaded.resolve(s);
                if !s.is_empty() && path.is_file() {
                    found.insert(at, json!(hashes.of(&path)?));
                }
            }
            Value::Object(map) => {
                stack.extend(map.iter().map(|(k, v)| (format!("{at}/{k}"), v)));
            }
            Value::Array(items) => {
                stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{at}/{i}"), v)),
                );
            }
            _ => {}
        }
    }
    Ok(Value::Object(found))
}

/// Why a job whose earlier identity was `old` runs again: each part that differs, with both
/// values where they are short (`params.n_steps: 4 -> 64`, `input: its content changed`).
pub fn differences(old: &Value, new: &Value) -> Vec<String> {
    if old.is_null() {
        return vec!["the earlier run recorded no identity for it (an older esegeta)".into()];
    }
    let mut out = Vec::new();
    diff("", old, new, &mut out);
    out
}

fn diff(at: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    if let (Value::Object(a), Value::Object(b)) = (old, new) {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            diff(
                &path,
                a.get(k).unwrap_or(&Value::Null),
                b.get(k).unwrap_or(&Value::Null),
                out,
            );
        }
        return;
    }
    let hash_like = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()))
    };
    if hash_like(old) || hash_like(new) {
        out.push(format!("{at}: the file's content changed"));
    } else {
        out.push(format!("{at}: {old} -> {new}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_part() {
        let old = json!({"params": {"n_steps": 4, "method": "gausslegendre"}, "input": "a".repeat(64), "target": 1});
        let new = json!({"params": {"n_steps": 64, "method": "gausslegendre"}, "input": "b".repeat(64), "target": 1});
        assert_eq!(
            differences(&old, &new),
            vec![
                "input: the file's content changed".to_string(),
                "params.n_steps: 4 -> 64".to_string()
            ]
        );
        assert!(differences(&new, &new).is_empty());
        assert_eq!(
            differences(&json!({}), &json!({"layer": "r2"})),
            vec!["layer: null -> \"r2\""]
        );
        assert_eq!(differences(&Value::Null, &new).len(), 1);
    }
}
