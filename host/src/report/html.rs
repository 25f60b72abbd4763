//! The report page: one HTML file with its CSS, its few lines of JS (sorting tables) and its
//! figures inline, so that it opens offline and can be mailed as is.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::Tensor;

use super::data::{distinct, metric_value, Entry, Kind};
use super::svg::{similarity_chart, Series};
use super::tables::Table;
use super::{details, figures};
use crate::run::manifest::{JobRecord, Manifest, Status};

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
th{background:#f0f0f0}th.sort{cursor:pointer}th.sort:after{content:' \\2195';color:#999}
td.num{text-align:right;font-family:monospace}.fail{color:#b00}.flag{color:#b00;font-weight:bold}
.grid img{max-width:400px}.strip{display:flex;flex-wrap:wrap;gap:4px;align-items:flex-end}
.strip figure{margin:0;text-align:center;font-size:11px}.strip img{max-height:150px}
.note{color:#555;font-size:.9em;max-width:60em}
figure.fig{margin:0 0 .5em 0}figure.fig figcaption{font-size:11px;color:#555;max-width:400px}
img.zoom{cursor:zoom-in}ul.warn{color:#a60;margin:.3em 0;padding-left:1.2em;max-width:400px;font-size:.9em}
#lightbox{display:none;position:fixed;top:0;left:0;right:0;bottom:0;background:rgba(0,0,0,.85);overflow:auto;cursor:zoom-out;text-align:center;z-index:10}
#lightbox img{margin:2em auto;background:#fff;max-width:none}";

/// Sorts a table by the clicked header: numbers as numbers, the rest as text; a second click
/// reverses. A click on a figure shows it at full size over the page (Escape or a click closes
/// it): the figures are inline, so this works offline.
const SCRIPT: &str = "document.querySelectorAll('th.sort').forEach(function(th){th.onclick=function(){
var t=th.closest('table'),i=Array.prototype.indexOf.call(th.parentNode.children,th),b=t.tBodies[0],
r=Array.prototype.slice.call(b.rows),d=th.dataset.dir==='a'?-1:1;th.dataset.dir=d>0?'a':'d';
r.sort(function(x,y){var p=x.cells[i].dataset.v||x.cells[i].textContent,q=y.cells[i].dataset.v||y.cells[i].textContent,
m=parseFloat(p),n=parseFloat(q);return d*(isNaN(m)||isNaN(n)?p.localeCompare(q):m-n);});
r.forEach(function(x){b.appendChild(x);});};});
var lb=document.getElementById('lightbox');document.querySelectorAll('img.zoom').forEach(function(i){
i.onclick=function(){lb.firstChild.src=i.src;lb.style.display='block';};});
lb.onclick=function(){lb.style.display='none';};
document.addEventListener('keydown',function(e){if(e.key==='Escape')lb.style.display='none';});";

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Builds the page. `inputs` caches loaded scans for the overlays.
pub struct Page<'a> {
    pub manifest: &'a Manifest,
    /// The run folder, where the page is written: file links are relative to it.
    pub folder: &'a Path,
    pub entries: Vec<Entry<'a>>,
    pub tables: Vec<Table>,
    inputs: HashMap<PathBuf, Option<Tensor>>,
}

impl<'a> Page<'a> {
    pub fn new(
        manifest: &'a Manifest,
        folder: &'a Path,
        entries: Vec<Entry<'a>>,
        tables: Vec<Table>,
    ) -> Self {
        Page {
            manifest,
            folder,
            entries,
            tables,
            inputs: HashMap::new(),
        }
    }

    pub fn render(mut self) -> String {
        let mut body = self.summary();
        body += &self.maps();
        body += &self.metrics();
        body += &self.randomisation();
        body += &self.jobs();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>esegeta report</title>\
             <style>{STYLE}</style></head><body>\n{body}\n<div id=\"lightbox\"><img alt=\"the figure at full size\"></div>\
             <script>{SCRIPT}</script></body></html>\n"
        )
    }

    fn summary(&self) -> String {
        let count = |s: Status| self.manifest.jobs.iter().filter(|r| r.status == s).count();
        format!(
            "<h1>esegeta report</h1><p>Run of <code>{}</code>: {} job(s): {} done, {} failed, {} timed out.</p>\
{}<p><a href=\"#maps\">Maps</a> · <a href=\"#metrics\">Metrics</a> · \
             <a href=\"#randomisation\">Cascading randomisation</a> · <a href=\"#jobs\">Jobs</a></p>\n",
            escape(&self.manifest.config.display().to_string()),
            self.manifest.jobs.len(),
            count(Status::Done),
            count(Status::Failed),
            count(Status::TimedOut),
            match self.manifest.jobs.iter().filter(|r| !r.warnings.is_empty()).count() {
                0 => String::new(),
                n => format!(
                    "<p class=\"flag\">{n} job(s) with warnings: see them under their figures \
                     and in the <a href=\"#jobs\">jobs table</a>.</p>"
                ),
            }
        )
    }

    fn input_tensor(&mut self, path: &PathBuf) -> Option<Tensor> {
        self.inputs
            .entry(path.clone())
            .or_insert_with(|| crate::io::load_input(path).ok().map(|i| i.tensor))
            .as_ref()
            .map(Tensor::shallow_clone)
    }

    /// Per input, a grid of methods (rows) x models (columns).
    fn maps(&mut self) -> String {
        let mut out = String::from(
            "<h2 id=\"maps\">Maps</h2><p class=\"note\">Click a figure to see it at full size. 3D maps: \
             the middle slice along i, j and k, the slice along each through the voxel of largest \
             |map|, then the maximum-intensity projection along each (the value of largest magnitude, with \
             its sign), over the scan in grey; the nine panels of a map share its colour scale. A layer's map is upsampled onto the input, and a map of several channels drawn as their sum; the caption says so. \
             Voxels are drawn square, in voxel order.</p>\n",
        );
        let maps: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].kind == Kind::Map)
            .collect();
        let many_targets = distinct(maps.iter().map(|&i| self.entries[i].record.target)).len() > 1;
        let models = distinct(maps.iter().map(|&i| self.entries[i].model.clone()));
        for input in distinct(maps.iter().map(|&i| self.entries[i].input.clone())) {
            let _ = write!(
                out,
                "<h3>{}</h3><table class=\"grid\"><tr><th>method</th>",
                escape(&input)
            );
            for m in &models {
                let _ = write!(out, "<th>{}</th>", escape(m));
            }
            out += "</tr>\n";
            let mine: Vec<usize> = maps
                .iter()
                .copied()
                .filter(|&i| self.entries[i].input == input)
                .collect();
            for row in distinct(mine.iter().map(|&i| self.entries[i].row(many_targets))) {
                let _ = write!(out, "<tr><th>{}</th>", escape(&row));
                for m in &models {
                    let cell = mine.iter().copied().find(|&i| {
                        self.entries[i].row(many_targets) == row && &self.entries[i].model == m
                    });
                    out += &match cell {
                        Some(i) => format!("<td>{}</td>", self.map_cell(i)),
                        None => "<td></td>".to_string(),
                    };
                }
                out += "</tr>\n";
            }
            out += "</table>\n";
        }
        out
    }

    fn map_cell(&mut self, i: usize) -> String {
        let (record, done, npy) = {
            let e = &self.entries[i];
            (e.record, e.done(), e.file(".npy").cloned())
        };
        let warnings = details::warnings(record);
        if !done {
            return failure(record.status, record.error.as_deref()) + &warnings;
        }
        let Some(npy) = npy else {
            return "<span class=\"note\">no .npy written (add \"npy\" to the formats to see it here)</span>".to_string() + &warnings;
        };
        let pictures = crate::io::load_tensor(&npy).and_then(|map| {
            let input = self
                .input_tensor(&record.input)
                .unwrap_or_else(|| map.zeros_like());
            figures::figures(&map, &input, &npy)
        });
        let mut out = match pictures {
            Ok(figures) => figures.iter().map(|f| figure_html(&record.id, f)).collect(),
            Err(e) => format!(
                "<span class=\"fail\">cannot draw {}: {}</span><br>",
                escape(&npy.display().to_string()),
                escape(&format!("{e:#}"))
            ),
        };
        out += &self.segments_figure(record);
        let _ = write!(
            out,
            "<span class=\"note\">{:.2} s · {}</span>{warnings}",
            record.duration_s,
            details::file_links(record, self.folder)
        );
        out
    }

    /// Beside a map made of superpixels or supervoxels (lime, a segmentation `feature_mask`):
    /// their boundaries over the input, from the job's `_segments.npy`.
    fn segments_figure(&mut self, record: &JobRecord) -> String {
        let Some(file) = record
            .files
            .iter()
            .find(|f| f.to_string_lossy().ends_with("_segments.npy"))
        else {
            return String::new();
        };
        let drawn = crate::io::load_tensor(file).and_then(|labels| {
            let input = self
                .input_tensor(&record.input)
                .unwrap_or_else(|| labels.unsqueeze(1).zeros_like().to_kind(tch::Kind::Float));
            figures::segment_figures(&labels, &input, file)
        });
        match drawn {
            Ok(figures) => figures
                .iter()
                .map(|f| figure_html(&format!("segments of {}", record.id), f))
                .collect(),
            Err(e) => format!(
                "<span class=\"fail\">cannot draw {}: {}</span><br>",
                escape(&file.display().to_string()),
                escape(&format!("{e:#}"))
            ),
        }
    }

    fn metrics(&self) -> String {
        let mut out = String::from("<h2 id=\"metrics\">Metrics</h2>\n");
        let metrics: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Metric)
            .collect();
        if metrics.is_empty() {
            return out + "<p class=\"note\">The run has no metric jobs.</p>\n";
        }
        for t in &self.tables {
            out += &table_html(t);
        }
        out += "<h3>Every metric job</h3><p class=\"note\">Click a header to sort.</p>\
                <table><thead><tr><th class=\"sort\">input</th><th class=\"sort\">model</th>\
                <th class=\"sort\">metric</th><th class=\"sort\">of method</th><th class=\"sort\">target</th>\
                <th class=\"sort\">score</th><th class=\"sort\">status</th></tr></thead><tbody>\n";
        for e in metrics {
            let value = metric_value(e);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\" data-v=\"{}\">{}</td><td>{}</td></tr>",
                escape(&e.input),
                escape(&e.model),
                escape(&e.record.name),
                escape(&e.explained()),
                e.record.target,
                value.map_or("NaN".to_string(), |v| v.to_string()),
                value.map_or("–".to_string(), |v| format!("{v:.4e}")),
                status_text(e.record.status)
            );
        }
        out + "</tbody></table>\n"
    }

    fn randomisation(&mut self) -> String {
        let mut out = String::from(
            "<h2 id=\"randomisation\">Cascading randomisation</h2><p class=\"note\">Adebayo et al. \
             (2018): the model's layers are re-initialised from the output end towards the input, \
             cumulatively, and the method re-run at each stage. A method whose maps stay close to the \
             original is insensitive to the model. Similarities to the original map: Spearman rank \
             correlation of the values and of their absolute values, and SSIM of the min-max \
             normalised maps.</p>\n",
        );
        let jobs: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].kind == Kind::Randomisation)
            .collect();
        if jobs.is_empty() {
            return out + "<p class=\"note\">Not asked for in this run.</p>\n";
        }
        for i in jobs {
            out += &self.cascade(i);
        }
        out
    }

    fn cascade(&mut self, i: usize) -> String {
        let (record, done, input, model) = {
            let e = &self.entries[i];
            (e.record, e.done(), e.input.clone(), e.model.clone())
        };
        let mut out = format!(
            "<h3>{} · {} · {} (target {})</h3>",
            escape(&input),
            escape(&model),
            escape(&record.name),
            record.target
        );
        out += &details::warnings(record);
        if !done {
            return out + &failure(record.status, record.error.as_deref());
        }
        let stages = record.extras["stages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if record.extras["flagged"].as_bool() == Some(true) {
            let _ = write!(
                out,
                "<p class=\"flag\">Flagged: the maps do not decay ({}).</p>",
                escape(record.extras["flag_rule"].as_str().unwrap_or(""))
            );
        }
        let input_tensor = self.input_tensor(&record.input);
        out += "<div class=\"strip\">";
        for s in &stages {
            let file = PathBuf::from(s["file"].as_str().unwrap_or(""));
            let label = stage_label(s);
            let picture = crate::io::load_tensor(&file).and_then(|map| {
                let input = input_tensor
                    .as_ref()
                    .map(Tensor::shallow_clone)
                    .unwrap_or_else(|| map.zeros_like());
                figures::thumbnail(&map, &input, &file)
            });
            match picture {
                Ok(uri) => {
                    let _ = write!(out, "<figure><img class=\"zoom\" title=\"click to enlarge\" alt=\"{0}\" src=\"{uri}\"><figcaption>{0}</figcaption></figure>", escape(&label));
                }
                Err(e) => {
                    let _ = write!(
                        out,
                        "<figure class=\"fail\">{}: {}</figure>",
                        escape(&label),
                        escape(&format!("{e:#}"))
                    );
                }
            }
        }
        out += "</div>";
        let series = |key: &str| -> Vec<f64> {
            stages
                .iter()
                .map(|s| s[key].as_f64().unwrap_or(f64::NAN))
                .collect()
        };
        let labels: Vec<String> = stages.iter().map(|s| s["stage"].to_string()).collect();
        out += &similarity_chart(
            &[
                Series {
                    name: "Spearman",
                    colour: "#1f77b4",
                    values: series("spearman"),
                },
                Series {
                    name: "Spearman |.|",
                    colour: "#ff7f0e",
                    values: series("spearman_abs"),
                },
                Series {
                    name: "SSIM",
                    colour: "#2ca02c",
                    values: series("ssim"),
                },
            ],
            &labels,
        );
        out + "\n"
    }

    fn jobs(&self) -> String {
        let mut out = String::from(
            "<h2 id=\"jobs\">Jobs</h2><p class=\"note\">Click a header to sort. Extras: what the \
             method reported beside its map (Captum's convergence delta, ...); long lists are \
             summarised, and results.json holds them whole. Files are relative to this page.</p>\
             <table><thead><tr><th class=\"sort\">job</th><th class=\"sort\">status</th>\
             <th class=\"sort\">seconds</th><th class=\"sort\">peak MiB</th><th class=\"sort\">device</th>\
             <th>message</th><th class=\"sort\">warnings</th><th>extras</th><th>files</th></tr></thead><tbody>\n",
        );
        for r in &self.manifest.jobs {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.0}</td><td>{} {}</td><td>{}</td><td data-v=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.id),
                if r.status == Status::Done { "" } else { "fail" },
                status_text(r.status),
                r.duration_s,
                r.peak_rss_mib,
                escape(&r.device),
                escape(&r.precision),
                escape(r.error.as_deref().unwrap_or("")),
                r.warnings.len(),
                details::warnings(r),
                details::extras(r),
                details::file_links(r, self.folder)
            );
        }
        out + "</tbody></table>\n"
    }
}

fn stage_label(stage: &Value) -> String {
    let k = stage["stage"].as_u64().unwrap_or(0);
    if k == 0 {
        return "original".into();
    }
    let last = stage["randomised"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{k}: +{last}")
}

/// A figure of the page, enlarged by a click.
fn figure_html(alt: &str, f: &figures::Figure) -> String {
    format!(
        "<figure class=\"fig\"><img class=\"zoom\" title=\"click to enlarge\" alt=\"{}\" \
         src=\"{}\"><figcaption>{}</figcaption></figure>",
        escape(alt),
        f.uri,
        escape(&f.caption)
    )
}

fn table_html(t: &Table) -> String {
    let mut out = format!(
        "<h3>{}</h3><p class=\"note\">Mean over inputs and targets; rows: the method scored, columns: the model. Also in tables/{}.csv.</p><table><thead><tr><th class=\"sort\">method</th>",
        escape(&t.metric),
        escape(&t.metric)
    );
    for c in &t.columns {
        let _ = write!(out, "<th class=\"sort\">{}</th>", escape(c));
    }
    out += "</tr></thead><tbody>\n";
    for r in &t.rows {
        let _ = write!(out, "<tr><td>{}</td>", escape(r));
        for c in &t.columns {
            out += &match t.cells.get(&(r.clone(), c.clone())) {
                Some((v, _)) => format!("<td class=\"num\" data-v=\"{v}\">{v:.4e}</td>"),
                None => "<td></td>".to_string(),
            };
        }
        out += "</tr>\n";
    }
    out + "</tbody></table>\n"
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::Done => "done",
        Status::Failed => "failed",
        Status::TimedOut => "timed out",
        Status::Skipped => "skipped",
        Status::Cancelled => "cancelled",
    }
}

fn failure(status: Status, error: Option<&str>) -> String {
    format!(
        "<span class=\"fail\">{}: {}</span>",
        status_text(status),
        escape(error.unwrap_or(""))
    )
}
