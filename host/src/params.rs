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
    let place = match json_path(at, &segments) {
        p if p.is_empty() => "the config".to_string(),
        p => p,
    };
    let rule_node = rule(schema, &segments);
    // A value that must match one of several forms (`anyOf: [X, null]` for an option, or
    // `"zscore"` or `{"mean": .., "std": ..}`) and has the JSON type of only one of them must
    // be a valid one of that: say why it is not, instead of "not valid under any of the
    // schemas".
    if let (ValidationErrorKind::AnyOf { .. }, Some(node)) = (error.kind(), rule_node) {
        if let Some(value) = instance.pointer(error.instance_path().as_str()) {
            if let Some(mut branch) = branch_for(schema, node, value) {
                if let (Value::Object(b), Some(defs)) = (&mut branch, schema.get("$defs")) {
                    b.insert("$defs".into(), defs.clone());
                }
                return validate(&branch, value, &place);
            }
        }
    }
    // Method parameters are "parameters" (Captum's keyword arguments); the config's own
    // fields are "keys".
    let in_params = |p: &str| p == "params" || p.starts_with("params.") || p.contains(".params");
    let noun = if in_params(at) { "parameter" } else { "key" };
    if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
        let names = property_names(rule_node.unwrap_or(schema));
        return vec![unexpected
            .iter()
            .map(|u| {
                format!(
                    "{}: unknown {noun}.{} Known {noun}s: {}",
                    json_path(&place, &[u.as_str()]),
                    did_you_mean(u, names.iter().map(String::as_str)),
                    names.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n  ")];
    }
    if let ValidationErrorKind::Required { property } = error.kind() {
        if property == "layer" {
            return vec![format!(
                "{place}: {error}: this method explains a layer; pass --layer NAME to esegeta \
                 explain, or give the method entry of a config a \"layer\" (`esegeta layers \
                 MODEL` lists a model's layers)"
            )];
        }
        return vec![format!("{place}: {error}")];
    }
    if let ValidationErrorKind::MinItems { limit } = error.kind() {
        // The rule would only repeat the item schema; say what is missing instead.
        let what = if place == "methods" {
            " (choose a method: `esegeta methods` lists them)"
        } else {
            ""
        };
        return vec![format!(
            "{place}: needs at least {limit} entr{}, and has fewer{what}",
            if *limit == 1 { "y" } else { "ies" }
        )];
    }
    let rule_text = rule_node
        .map(|r| format!(" (rule: {})", compact(schema, r)))
        .unwrap_or_default();
    vec![format!("{place}: {error}{rule_text}")]
}

/// The one form of `node` (itself, when `resolve` already chose it, or one of its `anyOf`)
/// whose JSON type is `value`'s; none when several or none are.
fn branch_for(root: &Value, node: &Value, value: &Value) -> Option<Value> {
    let Some(Value::Array(options)) = node.get("anyOf") else {
        return Some(node.clone());
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = |o: &&Value| {
        let o = resolve(root, o);
        let declared = o.get("type").and_then(Value::as_str).or_else(|| {
            o.get("properties")
                .map(|_| "object")
                .or_else(|| o.get("enum").or_else(|| o.get("oneOf")).map(|_| "string"))
        });
        declared == Some(kind) || (kind == "number" && declared == Some("integer"))
    };
    let matching: Vec<&Value> = options.iter().filter(fits).collect();
    match matching.as_slice() {
        [one] => Some(resolve(root, one).clone()),
        _ => None,
    }
}

/// `methods[3].params.n_steps` from `at` and a JSON pointer's segments.
pub(crate) fn json_path(at: &str, segments: &[&str]) -> String {
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
    fn config_keys_are_keys_with_suggestions_too() {
        let schema = json!({
            "type": "object",
            "properties": {"inputs": {"type": "array", "items": {"$ref": "#/$defs/Input"}}},
            "$defs": {"Input": {
                "type": "object",
                "additionalProperties": false,
                "properties": {"path": {"type": "string"}, "targets": {"type": "array"}}
            }}
        });
        let errs = validate(
            &schema,
            &json!({"inputs": [{"path": "x", "target": 1}]}),
            "",
        );
        assert_eq!(
            errs,
            vec![
                "inputs[0].target: unknown key. Did you mean `targets`? Known keys: path, targets"
            ]
        );
    }

    #[test]
    fn a_missing_layer_says_how_to_give_one() {
        let schema = json!({"type": "object", "required": ["layer"],
            "properties": {"layer": {"type": "string"}}})
        .to_string();
        let err = check("m", &schema, &json!({}), "params")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"layer\" is a required property"), "{err}");
        assert!(err.contains("pass --layer NAME"), "{err}");
        assert!(err.contains("`esegeta layers MODEL`"), "{err}");
        assert!(!err.contains("see the schema)"), "{err}");
    }

    #[test]
    fn of_several_forms_the_one_of_the_values_type_explains_the_error() {
        let schema = json!({
            "type": "object",
            "properties": {"normalize": {"anyOf": [
                {"type": "string", "enum": ["none", "zscore"]},
                {"type": "object", "additionalProperties": false,
                 "properties": {"mean": {"type": "array"}, "std": {"type": "array",
                     "items": {"type": "number", "exclusiveMinimum": 0.0}}}}
            ]}}
        });
        let errs = validate(
            &schema,
            &json!({"normalize": {"mean": [0], "std": [0]}}),
            "",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("normalize.std[0]: 0 is less than or equal to"),
            "{errs:?}"
        );
    }

    #[test]
    fn accepts_valid_parameters() {
        check("m", &schema(), &json!({"n_steps": 3}), "params").unwrap();
    }
}
