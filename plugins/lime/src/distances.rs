//! How far each sample (a 0/1 row over the segments) lies from the first, and the weight lime
//! gives it: `sklearn.metrics.pairwise_distances(data, data[0:1], metric)` and lime's
//! exponential kernel `sqrt(exp(-d^2 / kernel_width^2))`. lime_image takes the distances as
//! they come (lime_text scales them by 100; the image explainer does not).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// scikit-learn's metric names (`pairwise_distances`'s `metric`) that lime accepts here.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DistanceMetric {
    /// 1 - cosine similarity; a row of zeros has similarity 0 (distance 1), as scikit-learn's.
    #[default]
    Cosine,
    /// The Euclidean distance (`l2`).
    #[serde(alias = "l2")]
    Euclidean,
    /// The sum of absolute differences (`cityblock`, `l1`).
    #[serde(alias = "cityblock", alias = "l1")]
    Manhattan,
}

/// The distance of each row of `rows` (`n x features`, row-major) to the first row.
pub fn to_first(rows: &[f64], features: usize, metric: DistanceMetric) -> Vec<f64> {
    let first = &rows[..features];
    let first_norm = norm(first);
    rows.chunks_exact(features)
        .map(|row| match metric {
            DistanceMetric::Cosine => {
                let norms = first_norm * norm(row);
                // scikit-learn normalises each row (a zero row stays zero) and clips to [0, 2].
                let similarity = if norms > 0.0 {
                    dot(first, row) / norms
                } else {
                    0.0
                };
                (1.0 - similarity).clamp(0.0, 2.0)
            }
            DistanceMetric::Euclidean => first
                .iter()
                .zip(row)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt(),
            DistanceMetric::Manhattan => first.iter().zip(row).map(|(a, b)| (a - b).abs()).sum(),
        })
        .collect()
}

/// lime's default kernel, `sqrt(exp(-d^2 / width^2))`.
pub fn kernel(distances: &[f64], width: f64) -> Vec<f64> {
    distances
        .iter()
        .map(|d| (-(d * d) / (width * width)).exp().sqrt())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_binary_rows() {
        // Rows: all ones, half on, all off.
        let rows = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let d = to_first(&rows, 4, DistanceMetric::Cosine);
        assert!(d[0].abs() < 1e-12);
        assert!((d[1] - (1.0 - 2.0 / (2.0 * 2f64.sqrt()))).abs() < 1e-12);
        assert_eq!(d[2], 1.0);
        let w = kernel(&d, 0.25);
        assert!((w[2] - (-1.0f64 / 0.0625).exp().sqrt()).abs() < 1e-15);
    }
}
