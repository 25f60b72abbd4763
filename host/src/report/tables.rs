//! The comparison tables: one per metric, rows = the methods it explained, columns = the
//! models, each cell the mean score over the run's inputs and targets (the layout of the
//! DS6 paper's Tables 1 and 2). Written into the report and as `tables/<metric>.csv`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::data::{distinct, metric_value, Entry, Kind};

/// One metric's table.
pub struct Table {
    /// The metric's id (`captum.infidelity`); also the CSV's name.
    pub metric: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// `(row, column)` -> (mean, number of scores averaged).
    pub cells: BTreeMap<(String, String), (f64, usize)>,
}

/// Every metric's table from the finished metric jobs, metrics and rows in first-seen order.
pub fn tables(entries: &[Entry]) -> Vec<Table> {
    let metrics: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.kind == Kind::Metric && e.done())
        .collect();
    let columns = distinct(entries.iter().map(|e| e.model.clone()));
    distinct(metrics.iter().map(|e| e.record.method.clone()))
        .into_iter()
        .map(|metric| {
            let mine: Vec<&&Entry> = metrics
                .iter()
                .filter(|e| e.record.method == metric)
                .collect();
            let mut sums: BTreeMap<(String, String), (f64, usize)> = BTreeMap::new();
            for e in &mine {
                if let Some(v) = metric_value(e) {
                    let cell = sums.entry((e.explained(), e.model.clone())).or_default();
                    cell.0 += v;
                    cell.1 += 1;
                }
            }
            let cells = sums
                .into_iter()
                .map(|(k, (sum, n))| (k, (sum / n as f64, n)))
                .collect();
            Table {
                rows: distinct(mine.iter().map(|e| e.explained())),
                columns: columns.clone(),
                metric,
                cells,
            }
        })
        .collect()
}

impl Table {
    /// `method,<model>,...` then one line per row; an empty cell where no score was made.
    pub fn csv(&self) -> String {
        let mut out = format!("method,{}\n", self.columns.join(","));
        for row in &self.rows {
            let cells: Vec<String> = self
                .columns
                .iter()
                .map(|c| {
                    self.cells
                        .get(&(row.clone(), c.clone()))
                        .map(|(v, _)| format!("{v:.6e}"))
                        .unwrap_or_default()
                })
                .collect();
            out += &format!("{row},{}\n", cells.join(","));
        }
        out
    }

    pub fn write_csv(&self, folder: &Path) -> Result<()> {
        let path = folder.join("tables").join(format!("{}.csv", self.metric));
        let text = self.csv();
        crate::io::write_atomically(&path, |tmp| Ok(std::fs::write(tmp, &text)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_row_per_method_and_a_column_per_model_with_blanks_for_missing_scores() {
        let mut cells = BTreeMap::new();
        cells.insert(("captum.saliency".into(), "unet".into()), (0.5, 1));
        cells.insert(("captum.saliency".into(), "mss".into()), (0.25, 2));
        cells.insert(("captum.guided_backprop".into(), "mss".into()), (1e-3, 1));
        let t = Table {
            metric: "captum.infidelity".into(),
            rows: vec!["captum.saliency".into(), "captum.guided_backprop".into()],
            columns: vec!["unet".into(), "mss".into()],
            cells,
        };
        assert_eq!(
            t.csv(),
            "method,unet,mss\ncaptum.saliency,5.000000e-1,2.500000e-1\ncaptum.guided_backprop,,1.000000e-3\n"
        );
    }
}
