//! The small parts of a job the page shows beside its figure and in the jobs table: its
//! warnings, its extras summarised (a convergence delta matters to whoever reads the map, but a
//! per-patch list of them does not fit a cell), and links to its files relative to the report.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::html::escape;
use crate::run::manifest::JobRecord;

/// Arrays longer than this are summarised (count, min, mean, max) rather than listed.
const MAX_LISTED: usize = 8;
/// Strings are cut here: extras such as the randomisation's init rule are sentences.
const MAX_TEXT: usize = 80;
/// Nested objects are followed this deep.
const MAX_DEPTH: usize = 3;

/// The job's warnings as a list, or nothing.
pub fn warnings(record: &JobRecord) -> String {
    if record.warnings.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ul class=\"warn\">");
    for w in &record.warnings {
        let _ = write!(out, "<li>{}</li>", escape(w));
    }
    out + "</ul>"
}

/// The job's extras, one `key: value` line each, or nothing.
pub fn extras(record: &JobRecord) -> String {
    let mut lines = Vec::new();
    summarise("", &record.extras, 0, &mut lines);
    lines
        .iter()
        .map(|(k, v)| format!("<code>{}</code>: {}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// `(key path, text)` for every value worth a line under `value`.
pub fn summarise(key: &str, value: &Value, depth: usize, out: &mut Vec<(String, String)>) {
    let join = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match value {
        Value::Null => {}
        Value::Object(map) if depth < MAX_DEPTH => {
            for (k, v) in map {
                summarise(&join(k), v, depth + 1, out);
            }
        }
        Value::Object(map) => out.push((
            key.into(),
            format!("{} fields (in results.json)", map.len()),
        )),
        Value::Array(items) => out.push((key.into(), array(items))),
        Value::String(s) if s.chars().count() > MAX_TEXT => out.push((
            key.into(),
            format!("{}…", s.chars().take(MAX_TEXT).collect::<String>()),
        )),
        Value::String(s) => out.push((key.into(), s.clone())),
        Value::Bool(b) => out.push((key.into(), b.to_string())),
        Value::Number(n) => out.push((key.into(), number(n.as_f64().unwrap_or(f64::NAN)))),
    }
}

/// A short list of numbers as is; a long one, or one of objects (per-patch extras, stages),
/// by its count and the range of its numbers.
fn array(items: &[Value]) -> String {
    let mut numbers = Vec::new();
    flatten_numbers(items, &mut numbers);
    let all_numbers = items.iter().all(Value::is_number);
    if all_numbers && items.len() <= MAX_LISTED {
        let listed: Vec<String> = numbers.iter().map(|&v| number(v)).collect();
        return format!("[{}]", listed.join(", "));
    }
    let what = if all_numbers { "values" } else { "entries" };
    if numbers.is_empty() {
        return format!("{} {what} (in results.json)", items.len());
    }
    let (lo, hi) = numbers
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let mean = numbers.iter().sum::<f64>() / numbers.len() as f64;
    let of = if all_numbers {
        String::new()
    } else {
        format!(", their {} numbers", numbers.len())
    };
    format!(
        "{} {what}{of}: min {}, mean {}, max {} (all in results.json)",
        items.len(),
        number(lo),
        number(mean),
        number(hi)
    )
}

/// Every number in `items`, nested arrays and objects included.
fn flatten_numbers(items: &[Value], out: &mut Vec<f64>) {
    for item in items {
        match item {
            Value::Number(n) => out.extend(n.as_f64()),
            Value::Array(a) => flatten_numbers(a, out),
            Value::Object(m) => flatten_numbers(&m.values().cloned().collect::<Vec<_>>(), out),
            _ => {}
        }
    }
}

/// Four significant digits in plain notation for ordinary magnitudes, else scientific.
fn number(v: f64) -> String {
    let a = v.abs();
    if v.fract() == 0.0 && a < 1e9 {
        format!("{v:.0}")
    } else if (1e-3..1e6).contains(&a) {
        let digits = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

/// Links to the job's files, each relative to the report in `folder`.
pub fn file_links(record: &JobRecord, folder: &Path) -> String {
    record
        .files
        .iter()
        .map(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            format!(
                "<a href=\"{}\">{}</a>",
                escape(&href(&relative(f, folder))),
                escape(&name)
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// `file` relative to `folder`, through `..` where it lies outside it. Both are made absolute
/// first (files are recorded as the run named them, relative to where it ran).
pub fn relative(file: &Path, folder: &Path) -> PathBuf {
    let absolute = |p: &Path| {
        p.canonicalize()
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let (file, folder) = (absolute(file), absolute(folder));
    let (f, d): (Vec<Component>, Vec<Component>) =
        (file.components().collect(), folder.components().collect());
    let common = f.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..d.len() {
        out.push("..");
    }
    for c in &f[common..] {
        out.push(c);
    }
    out
}

/// A relative path as a URL: `/` separators, and the characters a URL reads otherwise escaped.
fn href(path: &Path) -> String {
    let mut out = String::new();
    for (i, c) in path.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for ch in c.as_os_str().to_string_lossy().chars() {
            match ch {
                ' ' => out.push_str("%20"),
                '#' => out.push_str("%23"),
                '?' => out.push_str("%3F"),
                '%' => out.push_str("%25"),
                c => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(v: Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        summarise("", &v, 0, &mut out);
        out
    }

    #[test]
    fn small_extras_are_listed_and_large_ones_summarised() {
        let l = lines(json!({"convergence_delta": [1612.9], "n": 3, "ok": true}));
        assert_eq!(
            l,
            [
                ("convergence_delta".into(), "[1613]".into()),
                ("n".into(), "3".into()),
                ("ok".into(), "true".into())
            ]
        );
        let many: Vec<f64> = (0..100).map(f64::from).collect();
        let l = lines(json!({ "deltas": many, "patches": [{"d": [1.0]}, {"d": [3.0]}] }));
        assert_eq!(
            l[0].1,
            "100 values: min 0, mean 49.50, max 99 (all in results.json)"
        );
        assert!(
            l[1].1.starts_with("2 entries, their 2 numbers: min 1"),
            "{}",
            l[1].1
        );
        assert_eq!(number(0.012346), "0.01235");
        assert_eq!(number(2.5e-7), "2.500e-7");
    }

    #[test]
    fn paths_are_relative_to_the_report() {
        let d = Path::new("/r/run");
        assert_eq!(
            relative(Path::new("/r/run/a/m.npy"), d),
            Path::new("a/m.npy")
        );
        assert_eq!(
            relative(Path::new("/r/other/m.npy"), d),
            Path::new("../other/m.npy")
        );
        assert_eq!(href(Path::new("a b/m#1.npy")), "a%20b/m%231.npy");
    }
}
