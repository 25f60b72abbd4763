//! The manifest of a run in progress: every finished job is appended to a journal beside
//! `results.json` at once, and `results.json` itself is rewritten only when that is cheap
//! against what the journal holds, so a long run writes its manifest a bounded number of times
//! (linear I/O, not one full rewrite per job) and loses nothing when it is killed: loading a
//! manifest replays its journal.
//!
//! Records are kept as their compact JSON text rather than as `serde_json::Value` trees, which
//! take several times the memory: a 2,000-job run's resident memory grew by about 5% with them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::manifest::{JobRecord, Manifest, Status};
use crate::io::write_atomically;

/// Below this size `results.json` is rewritten after every job, as readers expect of a short
/// run; above it, only when the journal has grown to a quarter of it or [`AT_MOST_STALE`] has
/// passed.
const ALWAYS_REWRITE_BELOW: u64 = 1 << 20;
/// The longest a reader of `results.json` (the GUI, a script) sees it lag behind the journal.
const AT_MOST_STALE: Duration = Duration::from_secs(2);

/// The journal of the manifest at `path`: one compact JSON record per line.
pub fn journal_path(manifest: &Path) -> PathBuf {
    let mut name = manifest.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Writes a run's manifest as its jobs finish.
pub struct ManifestWriter {
    path: PathBuf,
    config: PathBuf,
    config_as_run: Value,
    shard: Option<String>,
    records: BTreeMap<String, (Status, Box<RawValue>)>,
    journal: Option<File>,
    journal_bytes: u64,
    saved_bytes: u64,
    saved_at: Instant,
}

impl ManifestWriter {
    /// Takes over `manifest` (as loaded, journal replayed) for writing to `path`.
    pub fn new(manifest: Manifest, path: &Path) -> Result<Self> {
        let mut writer = ManifestWriter {
            path: path.to_path_buf(),
            config: manifest.config,
            config_as_run: manifest.config_as_run,
            shard: manifest.shard,
            records: BTreeMap::new(),
            journal: None,
            journal_bytes: 0,
            saved_bytes: 0,
            saved_at: Instant::now(),
        };
        for record in manifest.jobs {
            let text = serde_json::to_string(&record)?;
            writer.insert(&record, text)?;
        }
        // What an earlier run left in the journal is in `records` now: start both afresh.
        writer.save()?;
        Ok(writer)
    }

    /// Adds (or replaces) a finished job's record: in the journal at once, in `results.json`
    /// when rewriting it is due.
    pub fn record(&mut self, record: &JobRecord) -> Result<()> {
        let text = serde_json::to_string(record)?;
        self.append(&text)?;
        self.insert(record, text)?;
        if self.rewrite_due() {
            self.save()?;
        }
        Ok(())
    }

    /// The number of records with this status.
    pub fn count(&self, status: Status) -> usize {
        self.records.values().filter(|(s, _)| *s == status).count()
    }

    /// Writes `results.json` in full and removes the journal it makes redundant.
    pub fn finish(mut self) -> Result<()> {
        self.save()?;
        self.journal = None;
        let journal = journal_path(&self.path);
        if journal.exists() {
            std::fs::remove_file(&journal)
                .with_context(|| format!("cannot remove {}", journal.display()))?;
        }
        Ok(())
    }

    fn insert(&mut self, record: &JobRecord, text: String) -> Result<()> {
        let raw = RawValue::from_string(text)?;
        self.records.insert(record.id.clone(), (record.status, raw));
        Ok(())
    }

    fn append(&mut self, line: &str) -> Result<()> {
        let journal = journal_path(&self.path);
        if self.journal.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&journal)
                .with_context(|| format!("cannot open {}", journal.display()))?;
            self.journal = Some(file);
        }
        let file = self.journal.as_mut().expect("opened above");
        // One write per record, so that a kill leaves at most the last line torn.
        file.write_all(format!("{line}\n").as_bytes())
            .with_context(|| format!("cannot append to {}", journal.display()))?;
        self.journal_bytes += line.len() as u64 + 1;
        Ok(())
    }

    fn rewrite_due(&self) -> bool {
        self.saved_bytes < ALWAYS_REWRITE_BELOW
            || self.journal_bytes * 4 >= self.saved_bytes
            || self.saved_at.elapsed() >= AT_MOST_STALE
    }

    /// `results.json` first, then the journal emptied: a kill between the two replays records
    /// that are already there, which replaces them by themselves.
    fn save(&mut self) -> Result<()> {
        let mut written = 0;
        write_atomically(&self.path, |tmp| {
            let file = File::create(tmp)?;
            let mut out = Counting(std::io::BufWriter::with_capacity(64 << 10, file), 0);
            serde_json::to_writer_pretty(&mut out, &self.view())?;
            out.flush()?;
            written = out.1;
            Ok(())
        })?;
        self.saved_bytes = written;
        self.saved_at = Instant::now();
        if self.journal_bytes > 0 || journal_path(&self.path).exists() {
            self.journal = None;
            let journal = journal_path(&self.path);
            File::create(&journal)
                .with_context(|| format!("cannot empty {}", journal.display()))?;
            self.journal_bytes = 0;
        }
        Ok(())
    }

    fn view(&self) -> View<'_> {
        View {
            config: &self.config,
            config_as_run: &self.config_as_run,
            shard: &self.shard,
            jobs: Jobs(&self.records),
        }
    }
}

/// [`Manifest`]'s fields in its order, with the records as they are kept.
#[derive(Serialize)]
struct View<'a> {
    config: &'a Path,
    config_as_run: &'a Value,
    shard: &'a Option<String>,
    jobs: Jobs<'a>,
}

struct Jobs<'a>(&'a BTreeMap<String, (Status, Box<RawValue>)>);

impl Serialize for Jobs<'_> {
    /// Each record parsed back one at a time, so that the file is pretty-printed as before
    /// without holding every record as a tree at once.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (_, raw) in self.0.values() {
            let value: Value =
                serde_json::from_str(raw.get()).map_err(serde::ser::Error::custom)?;
            seq.serialize_element(&value)?;
        }
        seq.end()
    }
}

/// A writer that counts the bytes through it.
struct Counting<W>(W, u64);

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, status: Status) -> JobRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "input": "x.npy", "method": "m", "name": "n", "params": {"k": [1, 2]},
            "target": 0, "device": "cpu", "precision": "fp32", "status": status,
            "duration_s": 0.5, "peak_rss_mib": 1.0, "files": [], "extras": {"a": 1.5},
        }))
        .unwrap()
    }

    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("esegeta-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_run_killed_before_its_rewrite_loses_no_record_and_a_torn_line_only_its_own() {
        let path = folder("killed").join("results.json");
        let mut writer = ManifestWriter::new(Manifest::default(), &path).unwrap();
        // Past the size below which every job rewrites the file, so the journal holds them.
        writer.saved_bytes = ALWAYS_REWRITE_BELOW;
        writer.saved_at = Instant::now() + Duration::from_secs(3600);
        for i in 0..5 {
            writer
                .record(&record(&format!("job{i}"), Status::Done))
                .unwrap();
        }
        writer.record(&record("job2", Status::Failed)).unwrap();
        drop(writer); // killed: no finish()
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            file["jobs"],
            serde_json::json!([]),
            "the journal alone holds them"
        );
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&path))
            .unwrap();
        journal.write_all(b"{\"id\": \"job9\", \"sta").unwrap();
        let loaded = Manifest::load_or_new(&path, Path::new("")).unwrap();
        let ids: Vec<_> = loaded.jobs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["job0", "job1", "job2", "job3", "job4"]);
        assert_eq!(
            loaded.jobs[2].status,
            Status::Failed,
            "the later record wins"
        );
    }

    #[test]
    fn finishing_writes_every_record_once_sorted_and_removes_the_journal() {
        let path = folder("finish").join("results.json");
        let mut writer = ManifestWriter::new(Manifest::default(), &path).unwrap();
        for id in ["b", "a", "c", "a"] {
            writer.record(&record(id, Status::Done)).unwrap();
        }
        assert_eq!(writer.count(Status::Done), 3);
        writer.finish().unwrap();
        assert!(!journal_path(&path).exists());
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let ids: Vec<_> = value["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(value["jobs"][0]["extras"]["a"], 1.5);
        assert!(
            text.contains("\n      \"extras\""),
            "pretty-printed as before: {text}"
        );
    }
}
