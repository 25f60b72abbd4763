//! Warnings where a job's map means less than its name says: the host's own (a rule that
//! acted on few or no nodes, carried in the extras as `warnings`), an all-zero map, and a
//! convergence delta large against the attribution's sum. Each is one sentence for the log,
//! the manifest and the report; none fails the job.

use serde_json::Value;
use tch::{Kind, Tensor};

/// Above this share of |sum of the attribution| a convergence delta is reported.
const DELTA_SHARE: f64 = 0.1;

/// Takes the host's warnings out of `extras` (also those of each patch) and adds the map's.
pub fn collect(map: &Tensor, extras: &mut Value, is_metric: bool) -> Vec<String> {
    let mut out = Vec::new();
    take(extras, &mut out);
    if let Some(Value::Array(patches)) = extras.get_mut("patches") {
        for patch in patches {
            take(patch, &mut out);
        }
    }
    if is_metric {
        return out;
    }
    let mask_said = out
        .iter()
        .any(|w| w.contains("mask") && w.contains("empty"));
    if !mask_said && map.numel() > 0 && map.abs().max().double_value(&[]) == 0.0 {
        out.push(
            "the map is all zeros: the target's score does not depend on the input here (a \
             wrapper mask empty for this target, a saturated or dead path); check the target"
                .into(),
        );
    }
    if let Some(sentence) = delta_warning(map, extras) {
        out.push(sentence);
    }
    out
}

fn take(extras: &mut Value, out: &mut Vec<String>) {
    if let Some(Value::Array(list)) = extras.as_object_mut().and_then(|m| m.remove("warnings")) {
        for w in list.iter().filter_map(Value::as_str) {
            if !out.iter().any(|o| o == w) {
                out.push(w.to_string());
            }
        }
    }
}

/// The largest |delta| per example against that example's |sum of the map|.
fn delta_warning(map: &Tensor, extras: &Value) -> Option<String> {
    let deltas: Vec<f64> = match extras.get("convergence_delta")? {
        Value::Array(v) => v.iter().filter_map(Value::as_f64).collect(),
        v => vec![v.as_f64()?],
    };
    let batch = map.size().first().copied().unwrap_or(1).max(1);
    let sums = Vec::<f64>::try_from(map.reshape([batch, -1]).sum_dim_intlist(
        1,
        false,
        Kind::Double,
    ))
    .ok()?;
    deltas.iter().zip(sums.iter().cycle()).find_map(|(&d, &s)| {
        (d.abs() > DELTA_SHARE * s.abs().max(f64::MIN_POSITIVE)).then(|| {
            format!(
                "the convergence delta {d:.4} is {:.0}% of the attribution's sum {s:.4}: the \
                 map does not add up to the score difference it explains; raise n_steps (or use \
                 the gausslegendre method) before reading it",
                100.0 * d.abs() / s.abs().max(f64::MIN_POSITIVE)
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zeros_large_deltas_and_host_warnings_are_reported_once() {
        let map = Tensor::from_slice(&[1.0f32, 1.0]).reshape([1, 2]);
        let mut extras = json!({"convergence_delta": [1.5], "warnings": ["a rule"], "patches": [{"warnings": ["a rule"]}]});
        let w = collect(&map, &mut extras, false);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[1].contains("is 75% of the attribution's sum 2.0000"),
            "{w:?}"
        );
        assert!(extras.get("warnings").is_none());
        let mut small = json!({"convergence_delta": [0.01]});
        assert!(collect(&map, &mut small, false).is_empty());
        let zeros = Tensor::zeros([1, 4], (Kind::Float, tch::Device::Cpu));
        assert!(collect(&zeros, &mut json!({}), false)[0].contains("all zeros"));
        assert!(collect(&zeros, &mut json!({}), true).is_empty());
    }
}
