//! The interpretable models Lime and KernelShap fit to their samples, as Captum fits them with
//! scikit-learn: weighted Lasso (`SkLearnLasso`, Lime's default) and weighted least squares
//! (`SkLearnLinearRegression`, KernelShap's), both with an intercept.
//!
//! scikit-learn centres the data by the weighted means (the intercept absorbs them), scales
//! each sample by the square root of its weight, and for the Lasso first rescales the weights
//! to sum to the number of samples, so that its objective is
//! `1/(2n) * sum_i w_i (y_i - x_i.b)^2 + alpha * |b|_1`. The fits here solve the same problems,
//! in float64.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Samples of a surrogate: `n` rows of `m` interpretable features (0 or 1), the model's score
/// for each row and the row's weight.
pub struct Samples {
    pub rows: Vec<Vec<f64>>,
    pub scores: Vec<f64>,
    pub weights: Vec<f64>,
}

/// Which model is fitted.
#[derive(Clone, Copy, Debug)]
pub enum Surrogate {
    /// Least squares with an L1 penalty of `alpha`.
    Lasso { alpha: f64 },
    /// Ordinary least squares; the least-norm solution where the samples do not determine one.
    LinearRegression,
}

impl Surrogate {
    /// The fitted coefficients, one per feature (the intercept is not part of an attribution).
    pub fn fit(self, samples: &Samples) -> Result<Vec<f64>> {
        let centred = Centred::new(samples)?;
        match self {
            Surrogate::Lasso { alpha } => Ok(centred.lasso(alpha)),
            Surrogate::LinearRegression => centred.least_squares(),
        }
    }
}

/// The samples centred by their weighted means and scaled by the square root of their
/// weights (normalised to sum to the number of samples), column by column.
struct Centred {
    /// `columns[j][i]`: feature j of sample i.
    columns: Vec<Vec<f64>>,
    target: Vec<f64>,
}

impl Centred {
    fn new(s: &Samples) -> Result<Self> {
        let n = s.rows.len();
        ensure!(n > 0, "no samples to fit the interpretable model to");
        let total: f64 = s.weights.iter().sum();
        ensure!(
            total > 0.0 && s.weights.iter().all(|w| w.is_finite() && *w >= 0.0),
            "the samples' similarity weights must be non-negative and not all zero"
        );
        let weights: Vec<f64> = s.weights.iter().map(|w| w * n as f64 / total).collect();
        let roots: Vec<f64> = weights.iter().map(|w| w.sqrt()).collect();
        let mean = |value: &dyn Fn(usize) -> f64| {
            (0..n).map(|i| weights[i] * value(i)).sum::<f64>() / n as f64
        };
        let m = s.rows.first().map_or(0, Vec::len);
        let columns = (0..m)
            .map(|j| {
                let centre = mean(&|i| s.rows[i][j]);
                (0..n).map(|i| (s.rows[i][j] - centre) * roots[i]).collect()
            })
            .collect();
        let centre = mean(&|i| s.scores[i]);
        let target = (0..n).map(|i| (s.scores[i] - centre) * roots[i]).collect();
        Ok(Centred { columns, target })
    }

    /// Coordinate descent on `1/(2n) |y - X b|^2 + alpha |b|_1`, scikit-learn's algorithm,
    /// run until no coefficient moves by more than 1e-12 of the largest (scikit-learn stops
    /// at a duality gap of 1e-4, so its coefficients may differ from these by about that).
    fn lasso(&self, alpha: f64) -> Vec<f64> {
        const SWEEPS: usize = 100_000;
        let n = self.target.len() as f64;
        let norms: Vec<f64> = self.columns.iter().map(|c| dot(c, c)).collect();
        let mut coef = vec![0.0; self.columns.len()];
        let mut residual = self.target.clone();
        for _ in 0..SWEEPS {
            let (mut largest_step, mut largest) = (0f64, 0f64);
            for (j, column) in self.columns.iter().enumerate() {
                if norms[j] == 0.0 {
                    continue;
                }
                let old = coef[j];
                let rho = dot(column, &residual) + old * norms[j];
                let new = soft_threshold(rho, alpha * n) / norms[j];
                if new != old {
                    for (r, x) in residual.iter_mut().zip(column) {
                        *r -= (new - old) * x;
                    }
                    coef[j] = new;
                }
                largest_step = largest_step.max((new - old).abs());
                largest = largest.max(new.abs());
            }
            if largest_step <= 1e-12 * largest.max(f64::MIN_POSITIVE) {
                break;
            }
        }
        coef
    }

    /// Least squares by LAPACK's SVD-based solver, as scipy's `lstsq`: where the samples do
    /// not determine the coefficients (fewer samples than features), the least-norm solution.
    fn least_squares(&self) -> Result<Vec<f64>> {
        let (n, m) = (self.target.len() as i64, self.columns.len() as i64);
        if m == 0 {
            return Ok(Vec::new());
        }
        let flat: Vec<f64> = self.columns.iter().flatten().copied().collect();
        let a = Tensor::from_slice(&flat).view([m, n]).transpose(0, 1);
        let b = Tensor::from_slice(&self.target).view([n, 1]);
        let (solution, _, _, _) = a.f_linalg_lstsq(&b, None, "gelsd")?;
        let solution = solution.to_kind(Kind::Double).to_device(Device::Cpu);
        Ok(Vec::<f64>::try_from(solution.view([-1]))?)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn soft_threshold(x: f64, threshold: f64) -> f64 {
    x.signum() * (x.abs() - threshold).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scikit-learn's fits of the problems in tests/fixtures/linear_models.json (made by
    /// tools/make_fixtures.py, solved to convergence in float64): coefficients within 1e-7 of
    /// the largest.
    #[test]
    fn fits_match_scikit_learn() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/linear_models.json"
        );
        let problems: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(problems.len(), 4);
        let numbers = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        for p in &problems {
            let samples = Samples {
                rows: p["x"].as_array().unwrap().iter().map(numbers).collect(),
                scores: numbers(&p["y"]),
                weights: numbers(&p["weights"]),
            };
            let alpha = p["alpha"].as_f64().unwrap();
            let surrogate = if alpha > 0.0 {
                Surrogate::Lasso { alpha }
            } else {
                Surrogate::LinearRegression
            };
            let ours = surrogate.fit(&samples).unwrap();
            let expected = numbers(&p["coef"]);
            let scale = expected.iter().fold(0f64, |m, c| m.max(c.abs()));
            for (a, b) in ours.iter().zip(&expected) {
                assert!(
                    (a - b).abs() <= 1e-7 * scale,
                    "{}: ours {ours:?}, scikit-learn {expected:?}",
                    p["name"]
                );
            }
        }
    }

    #[test]
    fn refuses_weights_that_are_all_zero() {
        let samples = Samples {
            rows: vec![vec![1.0], vec![0.0]],
            scores: vec![1.0, 0.0],
            weights: vec![0.0, 0.0],
        };
        let err = Surrogate::LinearRegression.fit(&samples).unwrap_err();
        assert!(err.to_string().contains("not all zero"), "{err}");
    }
}
