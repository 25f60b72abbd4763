//! Checking a method's parameters against the JSON Schema its plugin publishes, before any
//! work starts: every error at once, each naming the parameter, what was wrong and the rule.

use anyhow::{bail, Result};
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::suggest::did_you_mean;

/// Checks `params` against `schema` (a method's parameter schema as JSON text). `at` names
/// where the parameters came from, for messages: `params` for `--params`,
/// `methods[3].params` in a config.
pub fn check(method_id: &str, schema: &str, params: &Value, at: &str) -> Result<()> {
    let errors = problems(method_id, schema, params, at);
    if !errors.is_empty() {
        bail!(
            "invalid parameters for {method_id}:\n  {}\n(`esegeta schema {method_id}` prints every parameter with its rule)",
            errors.join("\n  ")
        );
    }
    Ok(())
}

/// Every way `params` breaks the method's schema, one sentence each.
pub fn problems(method_id: &str, schema: &str, params: &Value, at: &str) -> Vec<String> {
    let schema: Value = match serde_json::from_str(schema) {
        Ok(s) => s,
        Err(_) => {
            return vec![format!(
                "{at}: the plugin's schema for {method_id} is not valid JSON"
            )]
        }
    };
    if !params.is_object() {
        return vec![format!(
            "{at}: the parameters of {method_id} must be a JSON object such as {{\"n_steps\": 50}}, got {params}"
        )];
    }
    validate(&schema, params, at)
}

/// Every error of `instance` against `schema`, each naming its place under `at`.
pub fn validate(schema: &Value, instance: &Value, at: &str) -> Vec<String> {
    match jsonschema::validator_for(schema) {
        Ok(v) => v
            .iter_errors(instance)
            .flat_map(|e| describe(&e, schema, instance, at))
            .collect(),
        Err(e) => vec![format!("{at}: the schema is not a valid JSON Schema: {e}")],
    }
}

fn describe(
    error: &jsonschema::ValidationError<'_>,
    schema: &Value,
    instance: &Value,
    at: &str,
) -> Vec<String> {
    let segments: Vec<&str> = error
        .instance_path()
        .as_str()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let place = json_path(at, &segments);
    let rule_node = rule(schema, &segments);
    // An optional object (`anyOf: [X, null]`) that is not null must be a valid X: say why it
    // is not, instead of "not valid under any of the schemas".
    if let (ValidationErrorKind::AnyOf { .. }, Some(node)) = (error.kind(), rule_node) {
        if node.get("anyOf").is_none() {
            if let Some(value) = instance.pointer(error.instance_path().as_str()) {
                let mut branch = node.clone();
                if let (Value::Object(b), Some(defs)) = (&mut branch, schema.get("$defs")) {
                    b.insert("$defs".into(), defs.clone());
                }
                return validate(&branch, value, &place);
            }
        }
    }
    if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
        let names = property_names(rule_node.unwrap_or(schema));
        return vec![unexpected
            .iter()
            .map(|u| {
                format!(
                    "{}: unknown parameter.{} Known parameters: {}",
                    json_path(&place, &[u.as_str()]),
                    did_you_mean(u, names.iter().map(String::as_str)),
                    names.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n  ")];
    }
    let rule_text = rule_node
        .map(|r| format!(" (rule: {})", compact(schema, r)))
        .unwrap_or_default();
    vec![format!("{place}: {error}{rule_text}")]
}

/// `methods[3].params.n_steps` from `at` and a JSON pointer's segments.
fn json_path(at: &str, segments: &[&str]) -> String {
    segments
        .iter()
        .fold(at.to_string(), |path, s| match s.parse::<usize>() {
            Ok(index) => format!("{path}[{index}]"),
            Err(_) if path.is_empty() => s.to_string(),
            Err(_) => format!("{path}.{s}"),
        })
}

/// The sub-schema that governs the value at `segments`, following `properties` and `$ref`.
fn rule<'a>(schema: &'a Value, segments: &[&str]) -> Option<&'a Value> {
    let mut node = resolve(schema, schema);
    for segment in segments {
        let child = match segment.parse::<usize>() {
            Ok(_) => node.get("items"),
            Err(_) => node.get("properties").and_then(|p| p.get(*segment)),
        };
        node = resolve(schema, child?);
    }
    Some(node)
}

/// Follows a local `$ref`, and the `anyOf: [X, null]` schemars writes for `Option<X>`.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    if let Some(target) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        if let Some(found) = root.pointer(target) {
            return resolve(root, found);
        }
    }
    if let Some(Value::Array(options)) = node.get("anyOf") {
        let real: Vec<&Value> = options
            .iter()
            .filter(|o| o.get("type") != Some(&Value::from("null")))
            .collect();
        if real.len() == 1 {
            return resolve(root, real[0]);
        }
    }
    node
}

fn property_names(node: &Value) -> Vec<String> {
    node.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The rule without its prose, as one line.
fn compact(root: &Value, node: &Value) -> String {
    let mut node = resolve(root, node).clone();
    if let Value::Object(map) = &mut node {
        map.remove("description");
        map.remove("title");
        if map.contains_key("properties") {
            return "an object; see the schema".to_string();
        }
    }
    node.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> String {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "n_steps": {"type": "integer", "minimum": 1, "default": 50, "description": "steps"},
                "method": {"type": "string", "enum": ["gausslegendre", "riemann_left"]}
            }
        })
        .to_string()
    }

    #[test]
    fn reports_every_error_with_place_and_rule() {
        let err = check(
            "m",
            &schema(),
            &json!({"n_steps": "fifty", "methd": "x"}),
            "params",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("params.n_steps: \"fifty\" is not of type \"integer\""),
            "{err}"
        );
        assert!(err.contains("\"minimum\":1"), "{err}");
        assert!(
            err.contains("params.methd: unknown parameter. Did you mean `method`?"),
            "{err}"
        );
    }

    #[test]
    fn accepts_valid_parameters() {
        check("m", &schema(), &json!({"n_steps": 3}), "params").unwrap();
    }
}
