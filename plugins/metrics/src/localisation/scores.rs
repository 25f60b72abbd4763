//! The localisation metrics as pure functions of the voxel relevance `[B, ...spatial]` and the
//! region (bool, same shape), with their tests; mod.rs holds the methods around them.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

use crate::distance::{squared_distance_to, unravel};

/// `[B, N]` f64 relevance and bool region, after checking that the shapes agree.
fn flat(relevance: &Tensor, inside: &Tensor) -> Result<(Tensor, Tensor)> {
    ensure!(
        relevance.size() == inside.size() && relevance.dim() >= 1,
        "the relevance has shape {:?} but the region {:?}; they must match",
        relevance.size(),
        inside.size()
    );
    let b = relevance.size()[0];
    Ok((
        relevance.f_to_kind(Kind::Double)?.f_reshape([b, -1])?,
        inside.f_to_kind(Kind::Bool)?.f_reshape([b, -1])?,
    ))
}

fn count(t: &Tensor) -> Result<i64> {
    Ok(t.f_sum(Kind::Int64)?.int64_value(&[]))
}

// ---------------------------------------------------------------------------------------------
// The metrics as pure functions

/// Relevance Mass Accuracy per example (`[B]`, f32): relevance inside the region over the
/// relevance of the whole map, both over the positive part of `relevance` when `positive_only`.
/// A map with no (positive) relevance at all scores 0.
pub fn relevance_mass_accuracy(
    relevance: &Tensor,
    inside: &Tensor,
    positive_only: bool,
) -> Result<Tensor> {
    let (r, m) = flat(relevance, inside)?;
    let r = if positive_only {
        r.f_clamp_min(0.0)?
    } else {
        r
    };
    let within = r
        .f_mul(&m.f_to_kind(Kind::Double)?)?
        .f_sum_dim_intlist(1, false, Kind::Double)?;
    let total = r.f_sum_dim_intlist(1, false, Kind::Double)?;
    let ratio = within.f_div(&total)?;
    let zero = ratio.f_zeros_like()?;
    Ok(ratio
        .f_where_self(&total.f_ne(0.0)?, &zero)?
        .f_to_kind(Kind::Float)?)
}

/// Relevance Rank Accuracy per example (`[B]`, f32): with K the region's voxel count, the share
/// of the K most relevant voxels that lie inside the region. Voxels tied with the K-th value
/// count by the expected share when the tie is broken at random: if `r` of the `t` tied voxels
/// are to be taken and `i` of them are inside, they contribute `r * i / t`.
pub fn relevance_rank_accuracy(relevance: &Tensor, inside: &Tensor) -> Result<Tensor> {
    let (r, m) = flat(relevance, inside)?;
    let (b, n) = (r.size()[0], r.size()[1]);
    let mut scores = Vec::with_capacity(b as usize);
    for i in 0..b {
        let (ri, mi) = (r.get(i), m.get(i));
        let k = count(&mi)?;
        ensure!(k > 0, "the region of example {i} is empty");
        // The K-th largest value is the (N - K + 1)-th smallest.
        let (kth, _) = ri.f_kthvalue(n - k + 1, 0, false)?;
        let threshold = kth.double_value(&[]);
        let above = ri.f_gt(threshold)?;
        let tied = ri.f_eq(threshold)?;
        let (n_above, in_above) = (count(&above)?, count(&above.f_logical_and(&mi)?)?);
        let (n_tied, in_tied) = (count(&tied)?, count(&tied.f_logical_and(&mi)?)?);
        let taken = (k - n_above) as f64;
        let hits = in_above as f64 + taken * in_tied as f64 / n_tied as f64;
        scores.push(hits / k as f64);
    }
    Ok(Tensor::from_slice(&scores).to_kind(Kind::Float))
}

/// The pointing game per example, with what it looked at.
pub struct Pointed {
    /// `[B]` f32: 1 for a hit, 0 for a miss. When several voxels share the maximum, the share
    /// of them that are hits (the expected score when the tie is broken at random), so that a
    /// constant map scores the region's share instead of a free hit.
    pub hits: Tensor,
    /// Spatial index of the (first, in memory order) most relevant voxel of each example.
    pub points: Vec<Vec<i64>>,
    /// Euclidean distance in voxels from that voxel to the region (0 inside).
    pub distances: Vec<f64>,
    /// How many voxels share the maximum, per example (1 almost always).
    pub tied_maxima: Vec<i64>,
}

/// The pointing game (Zhang et al.): a hit when the most relevant voxel lies within `tolerance`
/// voxels (Euclidean, inclusive) of the region.
pub fn pointing_game(relevance: &Tensor, inside: &Tensor, tolerance: f64) -> Result<Pointed> {
    let spatial: Vec<usize> = relevance.size()[1..].iter().map(|&s| s as usize).collect();
    let (r, m) = flat(relevance, inside)?;
    let b = r.size()[0];
    let limit = tolerance * tolerance;
    let mut pointed = Pointed {
        hits: Tensor::new(),
        points: Vec::new(),
        distances: Vec::new(),
        tied_maxima: Vec::new(),
    };
    let mut hits = Vec::with_capacity(b as usize);
    for i in 0..b {
        let ri = r.get(i);
        let maxima = ri.f_eq_tensor(&ri.f_max()?)?.f_nonzero()?.f_reshape([-1])?;
        let maxima = Vec::<i64>::try_from(&maxima.to_device(Device::Cpu))?;
        let region = Vec::<bool>::try_from(&m.get(i).to_device(Device::Cpu))?;
        let d2 = squared_distance_to(&region, &spatial);
        let hit = maxima.iter().filter(|&&v| d2[v as usize] <= limit).count();
        hits.push(hit as f64 / maxima.len() as f64);
        let first = maxima[0] as usize;
        pointed.points.push(unravel(first, &spatial));
        pointed.distances.push(d2[first].sqrt());
        pointed.tied_maxima.push(maxima.len() as i64);
    }
    pointed.hits = Tensor::from_slice(&hits).to_kind(Kind::Float);
    Ok(pointed)
}

/// ROC-AUC per example (`[B]`, f32) of the relevance as a score for "inside the region": the
/// Mann-Whitney U statistic over (inside, outside) pairs, a tie counting one half, computed from
/// average ranks. The region must leave at least one voxel outside.
pub fn attribution_roc_auc(relevance: &Tensor, inside: &Tensor) -> Result<Tensor> {
    let (r, m) = flat(relevance, inside)?;
    let (b, n) = (r.size()[0], r.size()[1]);
    let mut scores = Vec::with_capacity(b as usize);
    for i in 0..b {
        let (ri, mi) = (r.get(i), m.get(i));
        let positives = count(&mi)?;
        let negatives = n - positives;
        ensure!(
            positives > 0 && negatives > 0,
            "the region of example {i} covers {positives} of its {n} voxels; ROC-AUC needs \
             voxels both inside and outside the region"
        );
        let (sorted, order) = ri.f_sort(0, false)?;
        let (_, _, counts) = sorted.f_unique_consecutive(false, true, None::<i64>)?;
        let ends = counts.f_cumsum(0, Kind::Double)?;
        let starts = ends.f_sub(&counts.f_to_kind(Kind::Double)?)?;
        // The group of a tie spans ranks start+1 ..= end (1-based): its average rank.
        let average = starts.f_add(&ends)?.f_add_scalar(1.0)?.f_div_scalar(2.0)?;
        let ranks = average.f_repeat_interleave_self_tensor(&counts, 0, n)?;
        let labels = mi.f_index_select(0, &order)?.f_to_kind(Kind::Double)?;
        let rank_sum = ranks.f_mul(&labels)?.f_sum(Kind::Double)?.double_value(&[]);
        let (p, q) = (positives as f64, negatives as f64);
        scores.push((rank_sum - p * (p + 1.0) / 2.0) / (p * q));
    }
    Ok(Tensor::from_slice(&scores).to_kind(Kind::Float))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::localisation::{region, voxel_relevance};

    fn t(values: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).reshape(shape)
    }

    fn mask(values: &[bool], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).reshape(shape)
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(&t.to_kind(Kind::Double).reshape([-1])).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    /// The toy of the brief: relevance [3, -2, 1, 0], region the first two voxels.
    fn toy() -> (Tensor, Tensor) {
        (
            t(&[3.0, -2.0, 1.0, 0.0], &[1, 4]),
            mask(&[true, true, false, false], &[1, 4]),
        )
    }

    #[test]
    fn mass_accuracy_counts_positive_relevance() {
        let (r, m) = toy();
        // Positive relevance: 3 inside, 3 + 1 overall.
        close(
            &values(&relevance_mass_accuracy(&r, &m, true).unwrap()),
            &[0.75],
        );
        // Signed: (3 - 2) / (3 - 2 + 1 + 0).
        close(
            &values(&relevance_mass_accuracy(&r, &m, false).unwrap()),
            &[0.5],
        );
        // No positive relevance at all scores 0.
        let neg = t(&[-1.0, -2.0, 0.0, 0.0], &[1, 4]);
        close(
            &values(&relevance_mass_accuracy(&neg, &m, true).unwrap()),
            &[0.0],
        );
    }

    #[test]
    fn rank_accuracy_takes_the_k_largest() {
        let (r, m) = toy();
        // K = 2; the two largest are 3 (inside) and 1 (outside).
        close(&values(&relevance_rank_accuracy(&r, &m).unwrap()), &[0.5]);
        let all_in = mask(&[true, false, true, false], &[1, 4]);
        close(
            &values(&relevance_rank_accuracy(&r, &all_in).unwrap()),
            &[1.0],
        );
    }

    #[test]
    fn rank_accuracy_breaks_ties_by_expectation() {
        // K = 2: 2 is inside; the second pick is one of the tied 1s, one in, one out.
        let r = t(&[2.0, 1.0, 1.0, 0.0], &[1, 4]);
        let m = mask(&[true, false, true, false], &[1, 4]);
        close(&values(&relevance_rank_accuracy(&r, &m).unwrap()), &[0.75]);
        // A constant map scores chance, K / N.
        let flat = t(&[5.0; 4], &[1, 4]);
        let one = mask(&[false, false, true, false], &[1, 4]);
        close(
            &values(&relevance_rank_accuracy(&flat, &one).unwrap()),
            &[0.25],
        );
    }

    #[test]
    fn pointing_game_hits_and_misses() {
        let (r, m) = toy();
        let p = pointing_game(&r, &m, 0.0).unwrap();
        close(&values(&p.hits), &[1.0]);
        assert_eq!(p.points, vec![vec![0]]);
        let away = mask(&[false, false, true, true], &[1, 4]);
        let p = pointing_game(&r, &away, 0.0).unwrap();
        close(&values(&p.hits), &[0.0]);
        close(&p.distances, &[2.0]);
        // Within 2 voxels it counts; within 1.9 it does not.
        close(
            &values(&pointing_game(&r, &away, 2.0).unwrap().hits),
            &[1.0],
        );
        close(
            &values(&pointing_game(&r, &away, 1.9).unwrap().hits),
            &[0.0],
        );
    }

    #[test]
    fn pointing_game_tolerance_is_euclidean_in_2d() {
        // 5x5 map, maximum at (0, 0); region the single voxel (3, 4): distance 5.
        let mut rel = vec![0.0; 25];
        rel[0] = 1.0;
        let mut region = vec![false; 25];
        region[3 * 5 + 4] = true;
        let (r, m) = (t(&rel, &[1, 5, 5]), mask(&region, &[1, 5, 5]));
        let p = pointing_game(&r, &m, 4.99).unwrap();
        close(&values(&p.hits), &[0.0]);
        close(&p.distances, &[5.0]);
        assert_eq!(p.points, vec![vec![0, 0]]);
        close(&values(&pointing_game(&r, &m, 5.0).unwrap().hits), &[1.0]);
    }

    #[test]
    fn pointing_game_shares_tied_maxima() {
        // Four tied maxima, one inside: an expected hit of 1/4.
        let r = t(&[1.0; 4], &[1, 4]);
        let m = mask(&[false, true, false, false], &[1, 4]);
        let p = pointing_game(&r, &m, 0.0).unwrap();
        close(&values(&p.hits), &[0.25]);
        assert_eq!(p.tied_maxima, vec![4]);
    }

    #[test]
    fn roc_auc_is_the_mann_whitney_statistic() {
        let (r, m) = toy();
        // Pairs (inside, outside): (3,1) (3,0) win, (-2,1) (-2,0) lose: 2/4.
        close(&values(&attribution_roc_auc(&r, &m).unwrap()), &[0.5]);
        // Ties count half: inside {2, 1}, outside {1, 0}: 1 + 1 + 0.5 + 1 = 3.5 of 4.
        let r = t(&[2.0, 1.0, 1.0, 0.0], &[1, 4]);
        let m = mask(&[true, true, false, false], &[1, 4]);
        close(&values(&attribution_roc_auc(&r, &m).unwrap()), &[0.875]);
        // Perfect separation and a constant map.
        let r = t(&[4.0, 3.0, 2.0, 1.0, 0.0], &[1, 5]);
        let m = mask(&[true, true, false, false, false], &[1, 5]);
        close(&values(&attribution_roc_auc(&r, &m).unwrap()), &[1.0]);
        close(&values(&attribution_roc_auc(&r.neg(), &m).unwrap()), &[0.0]);
        close(
            &values(&attribution_roc_auc(&r.ones_like(), &m).unwrap()),
            &[0.5],
        );
        // A region covering everything has no negatives.
        let all = mask(&[true; 5], &[1, 5]);
        let e = attribution_roc_auc(&r, &all).unwrap_err().to_string();
        assert!(e.contains("both inside and outside"), "{e}");
    }

    #[test]
    fn metrics_are_per_example() {
        // Two examples with their own regions.
        let r = t(&[3.0, -2.0, 1.0, 0.0, 0.0, 1.0, 0.0, 3.0], &[2, 2, 2]);
        let m = mask(
            &[true, true, false, false, false, false, false, true],
            &[2, 2, 2],
        );
        close(
            &values(&relevance_mass_accuracy(&r, &m, true).unwrap()),
            &[0.75, 0.75],
        );
        close(
            &values(&relevance_rank_accuracy(&r, &m).unwrap()),
            &[0.5, 1.0],
        );
        close(
            &values(&pointing_game(&r, &m, 0.0).unwrap().hits),
            &[1.0, 1.0],
        );
        // Second: inside {3}, outside {0, 1, 0}: 3 wins of 3.
        close(&values(&attribution_roc_auc(&r, &m).unwrap()), &[0.5, 1.0]);
    }

    #[test]
    fn voxel_relevance_sums_channels() {
        // [1, 2, 2]: channel sums [1 - 3, 2 + 4] = [-2, 6]; with abs [4, 6].
        let map = t(&[1.0, 2.0, -3.0, 4.0], &[1, 2, 2]);
        close(
            &values(&voxel_relevance(&map, false, "m").unwrap()),
            &[-2.0, 6.0],
        );
        close(
            &values(&voxel_relevance(&map, true, "m").unwrap()),
            &[4.0, 6.0],
        );
        let bad = t(&[1.0, f64::NAN, 0.0, 0.0], &[1, 2, 2]);
        let e = voxel_relevance(&bad, false, "captum.x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("captum.x") && e.contains("NaN"), "{e}");
    }

    #[test]
    fn region_accepts_the_documented_shapes() {
        let input = [2i64, 3, 2, 2];
        let plain = t(&[1.0, 0.0, 0.0, 0.2], &[2, 2]);
        let expect = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        for shape in [&[2i64, 2][..], &[1, 2, 2], &[1, 1, 2, 2]] {
            let r = region(&plain.reshape(shape), &input, "`mask`").unwrap();
            assert_eq!(r.size(), vec![2, 2, 2]);
            close(&values(&r), &expect);
        }
        // One region per example, and the input's whole shape (any channel counts).
        let per_example = t(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9], &[2, 2, 2]);
        let r = region(&per_example, &input, "`mask`").unwrap();
        close(&values(&r), &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let full = Tensor::zeros([2, 3, 2, 2], (Kind::Float, Device::Cpu));
        let _ = full.get(0).get(2).get(1).get(1).fill_(1.0);
        let _ = full.get(1).get(0).get(0).get(0).fill_(1.0);
        let r = region(&full, &input, "`mask`").unwrap();
        close(&values(&r), &[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn region_errors_name_the_shapes_and_emptiness() {
        let input = [1i64, 3, 4, 4];
        let e = region(
            &Tensor::ones([3, 3], (Kind::Float, Device::Cpu)),
            &input,
            "`mask` (m.npy)",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("[3, 3]") && e.contains("[1, 3, 4, 4]") && e.contains("m.npy"),
            "{e}"
        );
        // A leading 3 is neither the batch (1) nor 1.
        let e = region(
            &Tensor::ones([3, 4, 4], (Kind::Float, Device::Cpu)),
            &input,
            "`mask`",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[3, 4, 4]"), "{e}");
        let e = region(
            &Tensor::zeros([4, 4], (Kind::Float, Device::Cpu)),
            &input,
            "`mask`",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("empty"), "{e}");
        let half = Tensor::full([4, 4], 0.5, (Kind::Float, Device::Cpu));
        assert!(
            region(&half, &input, "`mask`").is_err(),
            "0.5 is not inside"
        );
        // One empty region among several examples is named.
        let two = t(&[1.0, 0.0, 0.0, 0.0], &[2, 1, 2]);
        let e = region(&two, &[2, 1, 1, 2], "`mask`")
            .unwrap_err()
            .to_string();
        assert!(e.contains("example 1"), "{e}");
    }
}
