//! `esegeta schema ID --text`: a method's parameter schema (JSON Schema as schemars writes it,
//! with `$defs`/`$ref` and `anyOf [X, null]` for options) as a table a person reads: one row
//! per parameter with its type, default and description, nested groups flattened
//! (`noise_tunnel.nt_type`).

use anyhow::{Context, Result};
use serde_json::Value;

/// One parameter's row.
struct Row {
    name: String,
    kind: String,
    default: String,
    description: String,
}

/// The table of `schema` (JSON text), headed by the method id.
pub fn table(method_id: &str, schema: &str) -> Result<String> {
    let root: Value = serde_json::from_str(schema)
        .with_context(|| format!("the plugin's schema for {method_id} is not valid JSON"))?;
    let mut rows = Vec::new();
    collect(&root, &root, "", &mut rows);
    if rows.is_empty() {
        return Ok(format!("{method_id} takes no parameters\n"));
    }
    let width = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (wn, wk, wd) = (
        width(|r| &r.name, "name"),
        width(|r| &r.kind, "type"),
        width(|r| &r.default, "default"),
    );
    let mut out = format!(
        "{method_id} parameters (pass them as --params '{{\"name\": value}}'):\n\n{:<wn$}  {:<wk$}  {:<wd$}  description\n",
        "name", "type", "default"
    );
    for r in &rows {
        out.push_str(
            format!(
                "{:<wn$}  {:<wk$}  {:<wd$}  {}",
                r.name, r.kind, r.default, r.description
            )
            .trim_end(),
        );
        out.push('\n');
    }
    Ok(out)
}

/// The rows of an object schema's properties, prefixed, recursing into nested objects.
fn collect(root: &Value, node: &Value, prefix: &str, rows: &mut Vec<Row>) {
    let node = resolve(root, node);
    let Some(properties) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, property) in properties {
        let full = format!("{prefix}{name}");
        let target = resolve(root, property);
        // A property's own keys win over its definition's (schemars puts the field's doc and
        // default beside the `$ref`, the type's doc in `$defs`).
        let default = property
            .get("default")
            .or_else(|| target.get("default"))
            .map(|d| d.to_string())
            .unwrap_or_else(|| {
                if required.contains(&name.as_str()) {
                    "required".into()
                } else if nullable(property) {
                    // An option left out is off.
                    "null".into()
                } else {
                    "-".into()
                }
            });
        let description = property
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        rows.push(Row {
            name: full.clone(),
            kind: type_of(root, property),
            default,
            description,
        });
        if target.get("properties").is_some() {
            collect(root, target, &format!("{full}."), rows);
        }
    }
}

/// Follows local `$ref`s and the `anyOf: [X, null]` of an option to X.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    if let Some(found) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| root.pointer(p))
    {
        return resolve(root, found);
    }
    if let Some(Value::Array(options)) = node.get("anyOf") {
        let real: Vec<&Value> = options.iter().filter(|o| !is_null(o)).collect();
        if real.len() == 1 {
            return resolve(root, real[0]);
        }
    }
    node
}

/// Whether `null` is a valid value (`anyOf [X, null]`, `type: [X, "null"]`).
fn nullable(node: &Value) -> bool {
    node.get("anyOf")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(is_null))
        || node
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t == "null"))
}

fn is_null(node: &Value) -> bool {
    node.get("type") == Some(&Value::from("null"))
}

/// `integer >= 1`, `smoothgrad | vargrad`, `array of number`, `object | null`.
fn type_of(root: &Value, node: &Value) -> String {
    if let Some(found) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| root.pointer(p))
    {
        return type_of(root, found);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = node.get(key) {
            let mut names: Vec<String> = options.iter().map(|o| type_of(root, o)).collect();
            names.dedup();
            return names.join(" | ");
        }
    }
    if let Some(c) = node.get("const") {
        return text(c);
    }
    if let Some(Value::Array(values)) = node.get("enum") {
        return values.iter().map(text).collect::<Vec<_>>().join(" | ");
    }
    let (base, nullable) = match node.get("type") {
        Some(Value::String(t)) => (t.clone(), false),
        Some(Value::Array(ts)) => {
            let real: Vec<String> = ts.iter().filter(|t| *t != "null").map(text).collect();
            (real.join(" | "), real.len() < ts.len())
        }
        _ if node.get("properties").is_some() => ("object".into(), false),
        _ => ("any".into(), false),
    };
    let mut out = match node.get("items") {
        Some(items) => base.replacen("array", &format!("array of {}", type_of(root, items)), 1),
        None => base,
    };
    for (key, op) in [
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ] {
        if let Some(v) = node.get(key) {
            out = format!("{out} {op} {v}");
        }
    }
    if nullable {
        out.push_str(" | null");
    }
    out
}

/// A JSON value as a word: strings without quotes.
fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema of captum.saliency: a boolean and an optional nested group.
    fn saliency() -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../schemas/methods/captum.saliency.json"),
        )
        .unwrap()
    }

    fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in\n{table}"));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    #[test]
    fn a_real_schema_reads_as_rows_with_nested_groups_flattened() {
        let t = table("captum.saliency", &saliency()).unwrap();
        assert_eq!(
            row(&t, "abs"),
            vec![
                "abs",
                "boolean",
                "true",
                "Return the absolute value of the gradient (Captum's default)."
            ]
        );
        assert_eq!(row(&t, "noise_tunnel")[1], "object | null");
        assert_eq!(row(&t, "noise_tunnel")[2], "null");
        let nt_type = row(&t, "noise_tunnel.nt_type");
        assert_eq!(nt_type[1], "smoothgrad | smoothgrad_sq | vargrad");
        assert_eq!(nt_type[2], "\"smoothgrad\"", "the default is shown");
        assert_eq!(row(&t, "noise_tunnel.nt_samples")[1], "integer >= 1");
        assert_eq!(row(&t, "noise_tunnel.nt_samples")[2], "5");
        assert_eq!(
            row(&t, "noise_tunnel.nt_samples_batch_size")[1],
            "integer >= 1 | null"
        );
    }

    #[test]
    fn required_parameters_and_empty_schemas_say_so() {
        let schema = r#"{"type": "object", "required": ["layer"],
            "properties": {"layer": {"type": "string", "description": "The layer."}}}"#;
        let t = table("m", schema).unwrap();
        assert_eq!(
            row(&t, "layer"),
            vec!["layer", "string", "required", "The layer."]
        );
        let t = table("m", r#"{"type": "object", "properties": {}}"#).unwrap();
        assert_eq!(t, "m takes no parameters\n");
    }
}
