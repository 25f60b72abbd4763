//! Otsu's threshold, as scikit-image's `threshold_otsu` computes it with 256 bins.

/// The threshold maximising the between-class variance of a histogram of values in [0, 1]
/// with `hist.len()` equal bins; the centre of the best bin (the first, on ties).
pub fn threshold(hist: &[f64]) -> f64 {
    let n = hist.len();
    let centre = |i: usize| (i as f64 + 0.5) / n as f64;
    let mut weight_below = vec![0.0; n];
    let mut mean_below = vec![0.0; n];
    let (mut w, mut m) = (0.0, 0.0);
    for i in 0..n {
        w += hist[i];
        m += hist[i] * centre(i);
        weight_below[i] = w;
        mean_below[i] = m / w;
    }
    let (mut best, mut best_variance) = (0, f64::NEG_INFINITY);
    let (mut w_above, mut m_above) = (0.0, 0.0);
    let mut variances = vec![0.0; n - 1];
    for i in (1..n).rev() {
        w_above += hist[i];
        m_above += hist[i] * centre(i);
        let diff = mean_below[i - 1] - m_above / w_above;
        variances[i - 1] = weight_below[i - 1] * w_above * diff * diff;
    }
    for (i, &v) in variances.iter().enumerate() {
        // Strictly greater: the first maximum wins, as with numpy's argmax. Min-max normalised
        // values fill the first and last bins, so no side is ever empty (no NaN).
        if v > best_variance {
            best_variance = v;
            best = i;
        }
    }
    centre(best)
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_two_clusters() {
        let mut hist = vec![0.0; 256];
        hist[20] = 100.0;
        hist[200] = 50.0;
        let t = super::threshold(&hist);
        // Every split between the clusters is equally good; the first (bin 20) wins, and
        // `value > t` puts bin 20 in the background.
        assert_eq!(t, 20.5 / 256.0);
    }
}
