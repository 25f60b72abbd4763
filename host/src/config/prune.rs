//! A config that broke its schema, with the offending values taken out, so that `check` can
//! go on to the config's other problems (method ids, parameters, files) in the same pass
//! instead of showing them in rounds, one fix at a time.

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// `raw` without the values its schema refused (unknown keys removed, wrong values dropped so
/// that their defaults apply, or nulled inside arrays so that indexes keep their meaning), and
/// the config paths (`model.task`, `methods[1].params`) that were taken out.
pub fn without_invalid(schema: &Value, raw: &Value) -> (Value, Vec<String>) {
    let mut pruned = raw.clone();
    let mut taken = Vec::new();
    let Ok(validator) = jsonschema::validator_for(schema) else {
        return (pruned, taken);
    };
    for error in validator.iter_errors(raw) {
        let pointer = error.instance_path().as_str().to_string();
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                if let Some(Value::Object(map)) = pruned.pointer_mut(&pointer) {
                    for key in unexpected {
                        map.remove(key);
                        taken.push(place(&format!("{pointer}/{key}")));
                    }
                }
            }
            _ => {
                take_out(&mut pruned, &pointer);
                taken.push(place(&pointer));
            }
        }
    }
    (pruned, taken)
}

/// Whether a problem line is about `path` or something inside it.
pub fn is_under(problem: &str, path: &str) -> bool {
    path.is_empty()
        || problem
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with([':', '.', '[']))
}

fn take_out(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&unescape(last));
        }
        Some(Value::Array(items)) => {
            if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// A JSON pointer (`/methods/1/id`) as the config path problems are written with.
fn place(pointer: &str) -> String {
    let segments: Vec<String> = pointer
        .split('/')
        .filter(|s| !s.is_empty())
        .map(unescape)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    crate::params::json_path("", &segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refused_values_and_unknown_keys_are_taken_out_by_path() {
        let schema = json!({
            "type": "object", "additionalProperties": false,
            "properties": {
                "task": {"enum": ["classification", "segmentation"]},
                "methods": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}}
            }
        });
        let raw = json!({"task": "segmentaton", "methods": [{"id": "a"}, {"id": 3}], "extra": 1});
        let (pruned, taken) = without_invalid(&schema, &raw);
        assert_eq!(pruned, json!({"methods": [{"id": "a"}, {}]}));
        let mut taken = taken;
        taken.sort();
        assert_eq!(taken, ["extra", "methods[1].id", "task"]);
        assert!(is_under("methods[1].id: unknown method", "methods[1].id"));
        assert!(is_under("task: x", "task"));
        assert!(!is_under("tasks: x", "task"));
    }
}
