//! The lasso's regularisation path by least angle regression (Efron, Hastie, Johnstone and
//! Tibshirani, "Least Angle Regression", Annals of Statistics 2004), as scikit-learn's
//! `lars_path(X, y, method='lasso')` with its defaults (`alpha_min=0`, `max_iter=500`, no Gram
//! matrix given, machine-epsilon regularisation), which lime's `lasso_path` feature selection
//! calls: the coefficients at each knot of the path, starting from all zeros. lime reads only
//! which coefficients are nonzero at each knot.

const MAX_ITER: usize = 500;
/// scikit-learn's `tiny32` (float32's smallest normal) guarding divisions, and `eps`.
const TINY32: f64 = 1.175_494_350_822_287_5e-38;
const EQUALITY_TOLERANCE: f64 = f32::EPSILON as f64;

/// The coefficient vectors (each of length `p`) along the lasso path of `x` (`n x p`,
/// row-major) and `y`.
pub fn lasso_path(x: &[f64], y: &[f64], n: usize, p: usize) -> Vec<Vec<f64>> {
    let column = |j: usize| -> Vec<f64> { (0..n).map(|i| x[i * p + j]).collect() };
    let columns: Vec<Vec<f64>> = (0..p).map(column).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    // The Gram matrix, for the correlations of the equiangular direction and the Cholesky
    // factor of the active set's block.
    let gram: Vec<f64> = (0..p * p)
        .map(|e| dot(&columns[e / p], &columns[e % p]))
        .collect();
    // Correlations of the inactive features with the residual (`Cov`); entries of active
    // features are unused.
    let mut cov: Vec<f64> = columns.iter().map(|c| dot(c, y)).collect();
    let mut active: Vec<usize> = Vec::new();
    let mut signs: Vec<f64> = Vec::new();
    let mut chol = Cholesky::default();
    let mut coef = vec![0.0; p];
    let mut path = vec![coef.clone()];
    let mut alphas: Vec<f64> = Vec::new();
    let mut drop = false;
    let precision = 10f64.powi(15); // np.finfo(float64).precision decimals
    loop {
        let inactive: Vec<usize> = (0..p).filter(|j| !active.contains(j)).collect();
        let (best, c_signed) =
            inactive
                .iter()
                .map(|&j| (j, cov[j]))
                .fold((usize::MAX, 0.0f64), |acc, (j, c)| {
                    if acc.0 == usize::MAX || c.abs() > acc.1.abs() {
                        (j, c)
                    } else {
                        acc
                    }
                });
        let c = c_signed.abs();
        let alpha = c / n as f64;
        if alpha <= EQUALITY_TOLERANCE {
            // alpha_min = 0 is reached: the last point is the path's end.
            break;
        }
        // n_iter (the knots after the first) reached max_iter, or every feature is active.
        if path.len() > MAX_ITER || active.len() >= p {
            break;
        }
        if !drop {
            match chol.extend(&gram, p, &active, best) {
                Some(next) => {
                    chol = next;
                    active.push(best);
                    signs.push(c_signed.signum());
                }
                None => {
                    // Degenerate regressor (collinear with the active set): skip it.
                    cov[best] = 0.0;
                    continue;
                }
            }
        }
        if let Some(&prev_alpha) = alphas.last() {
            // The residual is small and alpha no longer shrinks: scikit-learn stops here.
            if prev_alpha < alpha {
                break;
            }
        }
        alphas.push(alpha);
        let mut least_squares = chol.solve(&signs);
        let dot_signs: f64 = least_squares.iter().zip(&signs).map(|(l, s)| l * s).sum();
        let mut aa = 1.0 / dot_signs.sqrt();
        if !aa.is_finite() {
            aa = 1.0 / dot_signs.max(f64::EPSILON).sqrt();
        }
        least_squares.iter_mut().for_each(|l| *l *= aa);
        // Correlation of each inactive feature with the equiangular direction, rounded as
        // scikit-learn rounds it (to float64's 15 decimals).
        let inactive: Vec<usize> = (0..p).filter(|j| !active.contains(j)).collect();
        let corr: Vec<f64> = inactive
            .iter()
            .map(|&j| {
                let v: f64 = active
                    .iter()
                    .zip(&least_squares)
                    .map(|(&a, l)| gram[j * p + a] * l)
                    .sum();
                round_half_even(v * precision) / precision
            })
            .collect();
        let mut gamma = c / aa;
        for (&j, &d) in inactive.iter().zip(&corr) {
            for candidate in [
                (c - cov[j]) / (aa - d + TINY32),
                (c + cov[j]) / (aa + d + TINY32),
            ] {
                if candidate > 0.0 && candidate < gamma {
                    gamma = candidate;
                }
            }
        }
        // A coefficient that would cross zero before the next knot leaves the active set.
        let z: Vec<f64> = active
            .iter()
            .zip(&least_squares)
            .map(|(&a, l)| -coef[a] / (l + TINY32))
            .collect();
        let z_pos = z
            .iter()
            .copied()
            .filter(|&v| v > 0.0)
            .fold(f64::INFINITY, f64::min);
        drop = z_pos < gamma;
        if drop {
            gamma = z_pos;
        }
        let mut next = vec![0.0; p];
        for (&a, l) in active.iter().zip(&least_squares) {
            next[a] = coef[a] + gamma * l;
        }
        for (&j, d) in inactive.iter().zip(&corr) {
            cov[j] -= gamma * d;
        }
        coef = next;
        path.push(coef.clone());
        if drop {
            let leaving: Vec<usize> = (0..active.len())
                .filter(|&k| z[k] == z_pos)
                .map(|k| active[k])
                .collect();
            let keep: Vec<bool> = active.iter().map(|a| !leaving.contains(a)).collect();
            let mut kept = keep.iter();
            signs.retain(|_| *kept.next().unwrap());
            active.retain(|a| !leaving.contains(a));
            chol = Cholesky::of(&gram, p, &active);
            // The dropped features' correlation with the new residual.
            let residual: Vec<f64> = (0..n)
                .map(|i| y[i] - active.iter().map(|&a| x[i * p + a] * coef[a]).sum::<f64>())
                .collect();
            for j in leaving {
                cov[j] = dot(&columns[j], &residual);
            }
        }
    }
    path
}

/// NumPy's `around`: round half to even.
fn round_half_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 {
        2.0 * (v / 2.0).round()
    } else {
        r
    }
}

/// The lower Cholesky factor of the active set's Gram block, grown one feature at a time.
#[derive(Default, Clone)]
struct Cholesky {
    /// Row-major, `k x k`.
    l: Vec<f64>,
    k: usize,
}

impl Cholesky {
    fn of(gram: &[f64], p: usize, active: &[usize]) -> Self {
        let mut chol = Cholesky::default();
        let mut so_far = Vec::new();
        for &a in active {
            chol = chol
                .extend(gram, p, &so_far, a)
                .unwrap_or_else(|| chol.with_pivot(gram, p, &so_far, a, f64::EPSILON));
            so_far.push(a);
        }
        chol
    }

    /// The factor with `new` added after `active`, or `None` when its pivot is below 1e-7
    /// (scikit-learn's test for a degenerate regressor).
    fn extend(&self, gram: &[f64], p: usize, active: &[usize], new: usize) -> Option<Self> {
        let next = self.with_pivot(gram, p, active, new, f64::EPSILON);
        let k = self.k;
        (next.l[k * (k + 1) + k] >= 1e-7).then_some(next)
    }

    fn with_pivot(&self, gram: &[f64], p: usize, active: &[usize], new: usize, eps: f64) -> Self {
        let k = self.k;
        let m = k + 1;
        let mut l = vec![0.0; m * m];
        for i in 0..k {
            l[i * m..i * m + k].copy_from_slice(&self.l[i * k..i * k + k]);
        }
        // Solve L w = G[active, new] by forward substitution.
        for i in 0..k {
            let s: f64 = (0..i).map(|j| l[i * m + j] * l[k * m + j]).sum();
            l[k * m + i] = (gram[active[i] * p + new] - s) / l[i * m + i];
        }
        let v: f64 = (0..k).map(|j| l[k * m + j] * l[k * m + j]).sum();
        l[k * m + k] = (gram[new * p + new] - v).abs().sqrt().max(eps);
        Cholesky { l, k: m }
    }

    /// Solves `L L' x = b`.
    fn solve(&self, b: &[f64]) -> Vec<f64> {
        let (l, k) = (&self.l, self.k);
        let mut y = vec![0.0; k];
        for i in 0..k {
            let s: f64 = (0..i).map(|j| l[i * k + j] * y[j]).sum();
            y[i] = (b[i] - s) / l[i * k + i];
        }
        let mut x = vec![0.0; k];
        for i in (0..k).rev() {
            let s: f64 = (i + 1..k).map(|j| l[j * k + i] * x[j]).sum();
            x[i] = (y[i] - s) / l[i * k + i];
        }
        x
    }
}
