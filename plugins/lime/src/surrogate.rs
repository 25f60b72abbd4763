//! lime_base's `LimeBase.explain_instance_with_data`: the features chosen by
//! `feature_selection` (none, forward_selection, highest_weights, lasso_path, auto), then a
//! weighted ridge regression (scikit-learn's `Ridge(alpha=1, fit_intercept=True)` with
//! `sample_weight`, lime's default `model_regressor`) on them, its weighted R^2 (`score`) and
//! its prediction at the first sample (`local_pred`). In float64, as scikit-learn computes.

use anyhow::{bail, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lars::lasso_path;

/// lime_base's feature selection methods.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSelection {
    /// `forward_selection` when `num_features` is at most 6, else `highest_weights`.
    #[default]
    Auto,
    /// Every feature.
    None,
    /// Greedily add the feature whose least-squares fit (with the ones chosen so far) has the
    /// best weighted R^2, `num_features` times.
    ForwardSelection,
    /// The `num_features` largest |coefficient| of a ridge fit (alpha 0.01) on all features.
    HighestWeights,
    /// The largest active set of at most `num_features` on the weighted lasso's LARS path.
    LassoPath,
}

/// The samples: `n` rows of 0/1 over `features` segments (row-major), the target's score of
/// each, and each one's kernel weight.
pub struct Neighbourhood<'a> {
    pub rows: &'a [f64],
    pub features: usize,
    pub scores: &'a [f64],
    pub weights: &'a [f64],
}

/// What lime returns: `(intercept, exp, score, local_pred)`; `exp` as lime sorts it (by
/// decreasing |weight|), as (feature index, weight).
pub struct Explanation {
    pub intercept: f64,
    pub weights: Vec<(usize, f64)>,
    pub score: f64,
    pub local_pred: f64,
}

impl Neighbourhood<'_> {
    fn n(&self) -> usize {
        self.scores.len()
    }

    fn value(&self, i: usize, j: usize) -> f64 {
        self.rows[i * self.features + j]
    }

    /// `LimeBase.explain_instance_with_data(data, labels, distances, label, num_features,
    /// feature_selection)` with the default ridge.
    pub fn explain(&self, num_features: usize, selection: FeatureSelection) -> Result<Explanation> {
        let total: f64 = self.weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            bail!(
                "every sample's kernel weight is 0 (their sum is {total}); the samples lie too \
                 far from the first one for `kernel_width`: give a larger `kernel_width`"
            );
        }
        let stats = Centred::new(self);
        let used = self.select(&stats, num_features, selection);
        let fit = stats.ridge(&used, 1.0);
        let score = self.r2(&used, &fit);
        let local_pred = fit.predict(|j| self.value(0, used[j]));
        let mut weights: Vec<(usize, f64)> = used.iter().copied().zip(fit.coef).collect();
        // Python's sort is stable: equal magnitudes keep the order of `used`.
        weights.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        Ok(Explanation {
            intercept: fit.intercept,
            weights,
            score,
            local_pred,
        })
    }

    fn select(
        &self,
        stats: &Centred,
        num_features: usize,
        selection: FeatureSelection,
    ) -> Vec<usize> {
        match selection {
            FeatureSelection::None => (0..self.features).collect(),
            FeatureSelection::Auto if num_features <= 6 => {
                self.select(stats, num_features, FeatureSelection::ForwardSelection)
            }
            FeatureSelection::Auto => {
                self.select(stats, num_features, FeatureSelection::HighestWeights)
            }
            FeatureSelection::ForwardSelection => self.forward_selection(stats, num_features),
            FeatureSelection::HighestWeights => {
                let all: Vec<usize> = (0..self.features).collect();
                let fit = stats.ridge(&all, 0.01);
                // lime ranks coef * data[0] (the first sample, all ones in lime's own samples).
                let mut ranked: Vec<(usize, f64)> = fit
                    .coef
                    .iter()
                    .enumerate()
                    .map(|(j, c)| (j, c * self.value(0, j)))
                    .collect();
                ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                ranked
                    .into_iter()
                    .take(num_features)
                    .map(|(j, _)| j)
                    .collect()
            }
            FeatureSelection::LassoPath => self.lasso_selection(stats, num_features),
        }
    }

    /// lime's `forward_selection`: `Ridge(alpha=0)` fits, each scored by its weighted R^2; a
    /// candidate must beat the best so far strictly, so ties go to the lower index.
    fn forward_selection(&self, stats: &Centred, num_features: usize) -> Vec<usize> {
        let mut used: Vec<usize> = Vec::new();
        for _ in 0..num_features.min(self.features) {
            let mut best = (0, -100_000_000.0);
            for feature in 0..self.features {
                if used.contains(&feature) {
                    continue;
                }
                let mut trial = used.clone();
                trial.push(feature);
                let fit = stats.ridge(&trial, 0.0);
                let score = self.r2(&trial, &fit);
                if score > best.1 {
                    best = (feature, score);
                }
            }
            used.push(best.0);
        }
        used
    }

    /// lime's `lasso_path` selection: the LARS path of the weighted, centred data, walked back
    /// from its end to the first point with at most `num_features` nonzero coefficients.
    fn lasso_selection(&self, stats: &Centred, num_features: usize) -> Vec<usize> {
        let (n, p) = (self.n(), self.features);
        let mut x = vec![0.0; n * p];
        let mut y = vec![0.0; n];
        for i in 0..n {
            let root = self.weights[i].sqrt();
            for j in 0..p {
                x[i * p + j] = (self.value(i, j) - stats.x_mean[j]) * root;
            }
            y[i] = (self.scores[i] - stats.y_mean) * root;
        }
        let path = lasso_path(&x, &y, n, p);
        let mut nonzero: Vec<usize> = (0..p).collect();
        for coef in path.iter().skip(1).rev() {
            nonzero = (0..p).filter(|&j| coef[j] != 0.0).collect();
            if nonzero.len() <= num_features {
                break;
            }
        }
        nonzero
    }

    /// scikit-learn's `r2_score(y, prediction, sample_weight=weights)`, with its convention
    /// for constant scores (1 for a perfect fit, else 0).
    fn r2(&self, used: &[usize], fit: &RidgeFit) -> f64 {
        let total: f64 = self.weights.iter().sum();
        let mean = self
            .scores
            .iter()
            .zip(self.weights)
            .map(|(y, w)| y * w)
            .sum::<f64>()
            / total;
        let (mut residual, mut spread) = (0.0, 0.0);
        for i in 0..self.n() {
            let prediction = fit.predict(|j| self.value(i, used[j]));
            let w = self.weights[i];
            residual += w * (self.scores[i] - prediction).powi(2);
            spread += w * (self.scores[i] - mean).powi(2);
        }
        if spread == 0.0 {
            return if residual == 0.0 { 1.0 } else { 0.0 };
        }
        1.0 - residual / spread
    }
}

/// The weighted means of the features and the score, and the weighted cross-products of the
/// centred features (with each other and with the score): what every ridge fit on any subset
/// of the features needs, computed once (scikit-learn centres with the weighted means too).
struct Centred {
    x_mean: Vec<f64>,
    y_mean: f64,
    /// `sum_i w_i (x_ij - m_j)(x_ik - m_k)`, `features x features`.
    gram: Vec<f64>,
    /// `sum_i w_i (x_ij - m_j)(y_i - m_y)`.
    cross: Vec<f64>,
    features: usize,
}

impl Centred {
    fn new(data: &Neighbourhood) -> Self {
        let (n, p) = (data.n(), data.features);
        let total: f64 = data.weights.iter().sum();
        let mut x_mean = vec![0.0; p];
        let mut y_mean = 0.0;
        for i in 0..n {
            let w = data.weights[i];
            for (j, m) in x_mean.iter_mut().enumerate() {
                *m += w * data.value(i, j);
            }
            y_mean += w * data.scores[i];
        }
        x_mean.iter_mut().for_each(|m| *m /= total);
        y_mean /= total;
        let mut gram = vec![0.0; p * p];
        let mut cross = vec![0.0; p];
        let mut centred = vec![0.0; p];
        for i in 0..n {
            let w = data.weights[i];
            for j in 0..p {
                centred[j] = data.value(i, j) - x_mean[j];
            }
            let dy = w * (data.scores[i] - y_mean);
            for j in 0..p {
                let wj = w * centred[j];
                cross[j] += centred[j] * dy;
                // The upper triangle; mirrored below.
                for k in j..p {
                    gram[j * p + k] += wj * centred[k];
                }
            }
        }
        for j in 0..p {
            for k in 0..j {
                gram[j * p + k] = gram[k * p + j];
            }
        }
        Centred {
            x_mean,
            y_mean,
            gram,
            cross,
            features: p,
        }
    }

    /// `Ridge(alpha, fit_intercept=True).fit(data[:, used], labels, sample_weight=weights)`:
    /// `(X'WX + alpha I) coef = X'Wy` on the centred data, solved by Cholesky, or by the
    /// pseudo-inverse where that fails (scikit-learn falls back to its SVD solver).
    fn ridge(&self, used: &[usize], alpha: f64) -> RidgeFit {
        let k = used.len();
        let mut a = vec![0.0; k * k];
        let mut b = vec![0.0; k];
        for (r, &j) in used.iter().enumerate() {
            b[r] = self.cross[j];
            for (c, &l) in used.iter().enumerate() {
                a[r * k + c] = self.gram[j * self.features + l];
            }
            a[r * k + r] += alpha;
        }
        let coef = cholesky_solve(&a, &b, k).unwrap_or_else(|| pseudo_inverse_solve(&a, &b, k));
        let offset: f64 = used
            .iter()
            .zip(&coef)
            .map(|(&j, c)| self.x_mean[j] * c)
            .sum();
        RidgeFit {
            intercept: self.y_mean - offset,
            coef,
        }
    }
}

struct RidgeFit {
    intercept: f64,
    coef: Vec<f64>,
}

impl RidgeFit {
    /// The prediction at a point whose `j`-th used feature is `x(j)`.
    fn predict(&self, x: impl Fn(usize) -> f64) -> f64 {
        self.intercept
            + self
                .coef
                .iter()
                .enumerate()
                .map(|(j, c)| c * x(j))
                .sum::<f64>()
    }
}

/// Solves `a x = b` for a symmetric positive definite `a` (`k x k`); `None` when `a` is not
/// positive definite (to working precision).
fn cholesky_solve(a: &[f64], b: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut s = a[i * k + j];
            for m in 0..j {
                s -= l[i * k + m] * l[j * k + m];
            }
            if i == j {
                // Not positive, or NaN: not positive definite.
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    // A pivot many orders below the diagonal it came from: singular to working precision.
    let smallest = (0..k).map(|i| l[i * k + i]).fold(f64::INFINITY, f64::min);
    let largest = (0..k).map(|i| a[i * k + i]).fold(0.0, f64::max);
    if k > 0 && smallest * smallest < largest * 1e-13 {
        return None;
    }
    let mut y = vec![0.0; k];
    for i in 0..k {
        let s: f64 = (0..i).map(|m| l[i * k + m] * y[m]).sum();
        y[i] = (b[i] - s) / l[i * k + i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let s: f64 = (i + 1..k).map(|m| l[m * k + i] * x[m]).sum();
        x[i] = (y[i] - s) / l[i * k + i];
    }
    Some(x)
}

/// The minimum-norm solution of `a x = b` for a symmetric `a`, through its eigenvectors
/// (cyclic Jacobi rotations); eigenvalues below 1e-12 of the largest count as zero.
fn pseudo_inverse_solve(a: &[f64], b: &[f64], k: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut v = vec![0.0; k * k];
    for i in 0..k {
        v[i * k + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * k + j] * m[i * k + j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                let apq = m[p * k + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q * k + q] - m[p * k + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..k {
                    let (mrp, mrq) = (m[r * k + p], m[r * k + q]);
                    m[r * k + p] = c * mrp - s * mrq;
                    m[r * k + q] = s * mrp + c * mrq;
                }
                for r in 0..k {
                    let (mpr, mqr) = (m[p * k + r], m[q * k + r]);
                    m[p * k + r] = c * mpr - s * mqr;
                    m[q * k + r] = s * mpr + c * mqr;
                }
                for r in 0..k {
                    let (vrp, vrq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * vrp - s * vrq;
                    v[r * k + q] = s * vrp + c * vrq;
                }
            }
        }
    }
    let largest = (0..k).map(|i| m[i * k + i].abs()).fold(0.0, f64::max);
    let mut x = vec![0.0; k];
    for e in 0..k {
        let lambda = m[e * k + e];
        if lambda.abs() <= largest * 1e-12 || lambda == 0.0 {
            continue;
        }
        let projection: f64 = (0..k).map(|r| v[r * k + e] * b[r]).sum::<f64>() / lambda;
        for r in 0..k {
            x[r] += v[r * k + e] * projection;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A noiseless linear score is recovered exactly by least squares, and ridge shrinks it.
    #[test]
    fn ridge_recovers_a_linear_score() {
        let rows: Vec<f64> = (0..64u32)
            .flat_map(|i| (0..3).map(move |j| f64::from((i >> j) & 1)))
            .collect();
        let scores: Vec<f64> = rows
            .chunks(3)
            .map(|r| 0.5 + 2.0 * r[0] - r[1] + 0.25 * r[2])
            .collect();
        let weights = vec![1.0; 64];
        let data = Neighbourhood {
            rows: &rows,
            features: 3,
            scores: &scores,
            weights: &weights,
        };
        let stats = Centred::new(&data);
        let fit = stats.ridge(&[0, 1, 2], 0.0);
        for (c, e) in fit.coef.iter().zip([2.0, -1.0, 0.25]) {
            assert!((c - e).abs() < 1e-12, "{c} vs {e}");
        }
        assert!((fit.intercept - 0.5).abs() < 1e-12);
        assert!((data.r2(&[0, 1, 2], &fit) - 1.0).abs() < 1e-12);
        let shrunk = stats.ridge(&[0, 1, 2], 1.0);
        assert!(shrunk.coef[0] < 2.0 && shrunk.coef[0] > 1.8);
        let chosen = data.forward_selection(&stats, 2);
        assert_eq!(chosen, [0, 1]);
    }

    #[test]
    fn the_pseudo_inverse_solves_a_singular_system() {
        // Two equal columns: the minimum-norm solution splits the weight.
        let a = [2.0, 2.0, 2.0, 2.0];
        let x = pseudo_inverse_solve(&a, &[4.0, 4.0], 2);
        assert!(
            (x[0] - 1.0).abs() < 1e-9 && (x[1] - 1.0).abs() < 1e-9,
            "{x:?}"
        );
        assert!(cholesky_solve(&a, &[4.0, 4.0], 2).is_none());
    }
}
