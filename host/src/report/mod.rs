//! `report.html`: a run's maps, metrics, randomisation cascades, timings and failures in one
//! file that opens offline, written at the end of every run and rebuilt by
//! `esegeta report RUN_DIR` from `results.json` and the written maps. The metric tables also
//! go to `tables/<metric>.csv`.

mod data;
mod details;
mod figures;
pub mod html;
mod svg;
pub mod tables;

use std::path::{Path, PathBuf};

use anyhow::Result;

/// Writes `report.html` and the tables' CSV files into the run folder; returns the report's
/// path.
pub fn write(folder: &Path) -> Result<PathBuf> {
    let manifest = data::load_manifest(folder)?;
    let entries: Vec<data::Entry> = manifest.jobs.iter().map(data::Entry::of).collect();
    let tables = tables::tables(&entries);
    for t in &tables {
        t.write_csv(folder)?;
    }
    let page = html::Page::new(&manifest, folder, entries, tables).render();
    let path = folder.join("report.html");
    crate::io::write_atomically(&path, |tmp| Ok(std::fs::write(tmp, page.as_bytes())?))?;
    Ok(path)
}
