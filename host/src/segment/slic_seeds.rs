//! Where SLIC's clusters start: on a regular grid (scikit-image's `regular_grid`), or inside
//! an ROI (maskSLIC, Irving 2016): points drawn from the mask with NumPy's
//! `RandomState(123)` and moved by five rounds of k-means (`scipy.cluster.vq.kmeans2`), as
//! `_get_mask_centroids` does. Both also give the seed spacing SLIC normalises distances by.

use esegeta_plugin_api::numpy_random::RandomState;

/// One axis of a regular grid: the first index and the step (scikit-image's `slice(start,
/// None, step)`; a step of 1 covers every index).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axis {
    pub start: usize,
    pub step: usize,
}

/// `skimage.util.regular_grid(shape, n_points)`: steps of about `(size / n)^(1/ndim)`, small
/// axes taken whole first, starts at half a step, steps rounded half to even.
pub fn regular_grid(shape: [usize; 3], n_points: usize) -> [Axis; 3] {
    let space: f64 = shape.iter().map(|&d| d as f64).product();
    if space <= n_points as f64 {
        return [Axis { start: 0, step: 1 }; 3];
    }
    let mut order = [0usize, 1, 2];
    order.sort_by_key(|&i| shape[i]);
    let sorted: Vec<f64> = order.iter().map(|&i| shape[i] as f64).collect();
    let mut steps = [(space / n_points as f64).powf(1.0 / 3.0); 3];
    if sorted.iter().zip(&steps).any(|(d, s)| d < s) {
        for dim in 0..3 {
            steps[dim] = sorted[dim];
            let rest: f64 = sorted[dim + 1..].iter().product();
            let left = (3 - dim - 1) as f64;
            for s in steps.iter_mut().skip(dim + 1) {
                *s = (rest / n_points as f64).powf(1.0 / left);
            }
            if sorted.iter().zip(&steps).all(|(d, s)| d >= s) {
                break;
            }
        }
    }
    let mut grid = [Axis { start: 0, step: 1 }; 3];
    for (k, &axis) in order.iter().enumerate() {
        grid[axis] = Axis {
            start: (steps[k] / 2.0).floor() as usize,
            step: steps[k].round_ties_even() as usize,
        };
    }
    grid
}

/// Seeds `(z, y, x)` on the grid for `n` clusters, and the grid's steps.
pub fn grid_centroids(shape: [usize; 3], n: usize) -> (Vec<[f64; 3]>, [f64; 3]) {
    let grid = regular_grid(shape, n);
    let mut seeds = Vec::new();
    for z in (grid[0].start..shape[0]).step_by(grid[0].step.max(1)) {
        for y in (grid[1].start..shape[1]).step_by(grid[1].step.max(1)) {
            for x in (grid[2].start..shape[2]).step_by(grid[2].step.max(1)) {
                seeds.push([z as f64, y as f64, x as f64]);
            }
        }
    }
    let steps = grid.map(|a| a.step as f64);
    (seeds, steps)
}

/// maskSLIC's seeds for `n` clusters inside `mask` (raster order over `shape`), and the mean
/// distance along each axis from a seed to its nearest other seed. `spatial_dims` is
/// scikit-image's `ndim_spatial` (2 for a colour image, 3 for a grey one or a volume, as its
/// code counts them), which sizes the k-means sample.
pub fn mask_centroids(
    mask: &[bool],
    shape: [usize; 3],
    n: usize,
    spatial_dims: u32,
) -> (Vec<[f64; 3]>, [f64; 3]) {
    let (h, w) = (shape[1], shape[2]);
    let coords: Vec<[f64; 3]> = mask
        .iter()
        .enumerate()
        .filter(|(_, &m)| m)
        .map(|(i, _)| [(i / (h * w)) as f64, ((i / w) % h) as f64, (i % w) as f64])
        .collect();
    let mut rng = RandomState::new(123);
    let mut initial = rng.choice_without_replacement(coords.len(), n.min(coords.len()));
    initial.sort_unstable();
    let dense = 10usize.pow(spatial_dims).saturating_mul(n);
    let sample: Vec<[f64; 3]> = if coords.len() > dense {
        let mut idx = rng.choice_without_replacement(coords.len(), dense);
        idx.sort_unstable();
        idx.iter().map(|&i| coords[i]).collect()
    } else {
        coords.clone()
    };
    let mut centroids: Vec<[f64; 3]> = initial.iter().map(|&i| coords[i]).collect();
    for _ in 0..5 {
        centroids = kmeans_step(&sample, &centroids);
    }
    let steps = nearest_spacing(&centroids);
    (centroids, steps)
}

/// One round of `kmeans2`: each point to its nearest centroid (the first on ties), each
/// centroid to its points' mean; a centroid without points stays where it was.
fn kmeans_step(points: &[[f64; 3]], centroids: &[[f64; 3]]) -> Vec<[f64; 3]> {
    let mut sums = vec![[0.0f64; 3]; centroids.len()];
    let mut counts = vec![0usize; centroids.len()];
    for p in points {
        let mut best = (f64::INFINITY, 0);
        for (k, c) in centroids.iter().enumerate() {
            let d = squared(p, c);
            if d < best.0 {
                best = (d, k);
            }
        }
        counts[best.1] += 1;
        for a in 0..3 {
            sums[best.1][a] += p[a];
        }
    }
    centroids
        .iter()
        .zip(sums.iter().zip(&counts))
        .map(|(old, (sum, &count))| {
            if count == 0 {
                *old
            } else {
                sum.map(|s| s / count as f64)
            }
        })
        .collect()
}

fn squared(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (0..3).map(|i| (a[i] - b[i]) * (a[i] - b[i])).sum()
}

/// Per axis, the mean over seeds of the distance to the nearest other seed (the first on
/// ties); zeros for a single seed.
fn nearest_spacing(centroids: &[[f64; 3]]) -> [f64; 3] {
    let mut total = [0.0; 3];
    if centroids.len() < 2 {
        return total;
    }
    for (i, c) in centroids.iter().enumerate() {
        let mut best = (f64::INFINITY, 0);
        for (j, o) in centroids.iter().enumerate() {
            let d = squared(c, o).sqrt();
            if j != i && d < best.0 {
                best = (d, j);
            }
        }
        for a in 0..3 {
            total[a] += (c[a] - centroids[best.1][a]).abs();
        }
    }
    total.map(|t| t / centroids.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(shape: [usize; 3], n: usize) -> Vec<(usize, usize)> {
        regular_grid(shape, n)
            .iter()
            .map(|a| (a.start, a.step))
            .collect()
    }

    #[test]
    fn the_grid_is_scikit_images() {
        // skimage.util.regular_grid of the same shapes and counts.
        assert_eq!(grid([1, 64, 64], 100), vec![(0, 1), (3, 6), (3, 6)]);
        assert_eq!(grid([24, 24, 24], 27), vec![(3, 8), (3, 8), (3, 8)]);
        assert_eq!(grid([7, 5, 300], 10), vec![(3, 7), (2, 5), (15, 30)]);
        assert_eq!(grid([1, 20, 40], 8), vec![(0, 1), (5, 10), (5, 10)]);
        assert_eq!(grid([2, 2, 2], 100), vec![(0, 1); 3]);
    }
}
