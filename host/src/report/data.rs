//! What the report reads: the run's manifest, sorted into map jobs, metric jobs and
//! cascading randomisation jobs, with the names the page groups them by.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::run::manifest::{JobRecord, Manifest, Status};

/// The kind of job a record is, as the report shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A map over the input.
    Map,
    /// A score of another method's map (its params hold `explained`).
    Metric,
    /// A method re-run as the model's layers are re-initialised.
    Randomisation,
}

/// One job's record with the names the report groups it by.
pub struct Entry<'a> {
    pub record: &'a JobRecord,
    pub kind: Kind,
    /// The input's name (the first part of the job id).
    pub input: String,
    pub model: String,
}

impl<'a> Entry<'a> {
    pub fn of(record: &'a JobRecord) -> Self {
        let parts: Vec<&str> = record.id.split('/').collect();
        let kind = if record.id.ends_with("/randomisation") {
            Kind::Randomisation
        } else if record.params.get("explained").is_some() {
            Kind::Metric
        } else {
            Kind::Map
        };
        // Manifests written before model labels have ids `<input>/<method>/target<N>`.
        let model = if record.model.is_empty() {
            "model".to_string()
        } else {
            record.model.clone()
        };
        Entry {
            record,
            kind,
            input: parts.first().copied().unwrap_or_default().to_string(),
            model,
        }
    }

    /// The method's row label: its name, with the target when the run explains several.
    pub fn row(&self, many_targets: bool) -> String {
        if many_targets {
            format!("{} (target {})", self.record.name, self.record.target)
        } else {
            self.record.name.clone()
        }
    }

    /// The first written file with this extension.
    pub fn file(&self, extension: &str) -> Option<&PathBuf> {
        self.record
            .files
            .iter()
            .find(|f| f.to_string_lossy().ends_with(extension))
    }

    /// The method a metric explained (`params.explained.method`).
    pub fn explained(&self) -> String {
        self.record
            .params
            .pointer("/explained/method")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    }

    pub fn done(&self) -> bool {
        self.record.status == Status::Done
    }
}

pub fn load_manifest(folder: &Path) -> Result<Manifest> {
    let path = folder.join("results.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: is {} a run folder? (a sharded run needs `esegeta merge` first)",
            path.display(),
            folder.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not an esegeta manifest", path.display()))
}

/// Values in first-seen order, without repeats.
pub fn distinct<T: PartialEq + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// A metric job's score: the mean of its per-example values (batch 1 in a run: the value).
pub fn metric_value(entry: &Entry) -> Option<f64> {
    let file = entry.file(".npy")?;
    let t = crate::io::load_tensor(file).ok()?;
    let v = t
        .to_kind(tch::Kind::Double)
        .mean(tch::Kind::Double)
        .double_value(&[]);
    v.is_finite().then_some(v)
}
