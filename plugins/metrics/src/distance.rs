//! Distances on the voxel grid, for the pointing game's tolerance: an exact Euclidean distance
//! transform on 2D and 3D grids.

/// The grid coordinates of a row-major flat index.
pub fn unravel(mut index: usize, shape: &[usize]) -> Vec<i64> {
    let mut out = vec![0i64; shape.len()];
    for d in (0..shape.len()).rev() {
        out[d] = (index % shape[d]) as i64;
        index /= shape[d];
    }
    out
}

/// Squared Euclidean distance (in voxels) from every voxel of a row-major grid of `shape` to the
/// nearest voxel where `inside` is true (0 on them; infinite when there is none). Exact, in
/// O(voxels x dims): the separable transform of Felzenszwalb & Huttenlocher (Theory of Computing
/// 8, 2012), one pass of a 1D lower envelope of parabolas per axis.
pub fn squared_distance_to(inside: &[bool], shape: &[usize]) -> Vec<f64> {
    let mut f: Vec<f64> = inside
        .iter()
        .map(|&v| if v { 0.0 } else { f64::INFINITY })
        .collect();
    let total = f.len();
    let (mut line, mut out) = (Vec::new(), Vec::new());
    let (mut v, mut z) = (Vec::new(), Vec::new());
    for (axis, &len) in shape.iter().enumerate() {
        if len <= 1 {
            continue;
        }
        let stride: usize = shape[axis + 1..].iter().product();
        let outer = total / (len * stride);
        line.resize(len, 0.0);
        out.resize(len, 0.0);
        for o in 0..outer {
            for inner in 0..stride {
                let start = o * len * stride + inner;
                for q in 0..len {
                    line[q] = f[start + q * stride];
                }
                distance_1d(&line, &mut out, &mut v, &mut z);
                for q in 0..len {
                    f[start + q * stride] = out[q];
                }
            }
        }
    }
    f
}

/// `d[q] = min over p of (q - p)^2 + f[p]`, skipping infinite `f[p]`.
fn distance_1d(f: &[f64], d: &mut [f64], v: &mut Vec<usize>, z: &mut Vec<f64>) {
    v.clear();
    z.clear();
    for q in 0..f.len() {
        if !f[q].is_finite() {
            continue;
        }
        let fq = f[q] + (q * q) as f64;
        // Pop the parabolas the new one hides; z[k] is where v[k] starts being the lowest.
        while let (Some(&p), Some(&zk)) = (v.last(), z.last()) {
            let s = (fq - (f[p] + (p * p) as f64)) / (2.0 * (q - p) as f64);
            if s <= zk {
                v.pop();
                z.pop();
            } else {
                v.push(q);
                z.push(s);
                break;
            }
        }
        if v.is_empty() {
            v.push(q);
            z.push(f64::NEG_INFINITY);
        }
    }
    if v.is_empty() {
        d.fill(f64::INFINITY);
        return;
    }
    let mut k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while k + 1 < v.len() && z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        let gap = q as f64 - p as f64;
        *dq = gap * gap + f[p];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_transform_matches_brute_force_in_3d() {
        let shape = [4usize, 5, 3];
        let n: usize = shape.iter().product();
        let inside: Vec<bool> = (0..n).map(|i| i % 17 == 3 || i == 40).collect();
        let d2 = squared_distance_to(&inside, &shape);
        for (i, &d) in d2.iter().enumerate() {
            let a = unravel(i, &shape);
            let best = (0..n)
                .filter(|&j| inside[j])
                .map(|j| {
                    let b = unravel(j, &shape);
                    a.iter()
                        .zip(&b)
                        .map(|(x, y)| ((x - y) * (x - y)) as f64)
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min);
            assert_eq!(d, best, "voxel {a:?}");
        }
        assert!(squared_distance_to(&[false; 3], &[3])
            .iter()
            .all(|d| d.is_infinite()));
    }
}
