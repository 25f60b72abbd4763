//! Felzenszwalb and Huttenlocher's graph-based segmentation ("Efficient Graph-Based Image
//! Segmentation", IJCV 2004) as scikit-image 0.26's `segmentation.felzenszwalb`: Gaussian
//! smoothing (`sigma`, reflect), the 8-connected pixel graph weighted by the Euclidean
//! distance over all channels, edges merged in ascending weight while the weight is below both
//! components' internal difference plus `scale / 255 / size` (scikit-image keeps those
//! thresholds in float32), then components under `min_size` merged along the same edges.
//! 2D only, as scikit-image's (it refuses volumes).

use anyhow::{ensure, Result};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{gaussian, Image};

/// scikit-image's `felzenszwalb` parameters, with its defaults.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct FelzenszwalbParams {
    /// The observation level: higher gives larger segments. Default 1.
    #[serde(default = "one")]
    pub scale: f64,
    /// Width of the Gaussian smoothing before segmenting. Default 0.8.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Smallest segment, in pixels, enforced after segmenting. Default 20.
    #[serde(default = "default_min_size")]
    pub min_size: i64,
}

fn one() -> f64 {
    1.0
}
fn default_sigma() -> f64 {
    0.8
}
fn default_min_size() -> i64 {
    20
}

/// Union-find whose root is the smallest index of its set (scikit-image's `join_trees`).
struct Forest(Vec<usize>);

impl Forest {
    fn root(&mut self, mut n: usize) -> usize {
        let mut root = n;
        while self.0[root] < root {
            root = self.0[root];
        }
        while self.0[n] < n {
            let next = self.0[n];
            self.0[n] = root;
            n = next;
        }
        root
    }

    /// Joins the sets with roots `a` and `b`; returns the new root.
    fn join(&mut self, a: usize, b: usize) -> usize {
        let root = a.min(b);
        self.0[a.max(b)] = root;
        root
    }
}

/// The labels of `image` (raster order), 0 upwards in the order of each segment's first pixel.
pub fn felzenszwalb(image: &Image, p: &FelzenszwalbParams) -> Result<Vec<i64>> {
    ensure!(
        image.is_2d,
        "felzenszwalb works on 2D images only (scikit-image's refuses volumes too); segment a \
         volume with slic"
    );
    ensure!(
        p.scale > 0.0 && p.scale.is_finite(),
        "felzenszwalb: `scale` must be a positive number (it is {})",
        p.scale
    );
    ensure!(
        p.sigma >= 0.0 && p.sigma.is_finite(),
        "felzenszwalb: `sigma` must be 0 or more (it is {})",
        p.sigma
    );
    ensure!(
        p.min_size >= 0,
        "felzenszwalb: `min_size` must be 0 or more (it is {})",
        p.min_size
    );
    let scale = p.scale / 255.0;
    let img = gaussian::smooth(image, [0.0, p.sigma, p.sigma]);
    let [_, h, w] = img.dims;
    let cost = |a: usize, b: usize| -> f64 {
        let (pa, pb) = (img.pixel(a), img.pixel(b));
        pa.iter()
            .zip(pb)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt()
    };
    // scikit-image's edge order: right, down, down-right, up-right neighbours.
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for y in 0..h {
        for x in 1..w {
            edges.push((y * w + x, y * w + x - 1));
        }
    }
    for y in 1..h {
        for x in 0..w {
            edges.push((y * w + x, (y - 1) * w + x));
        }
    }
    for y in 1..h {
        for x in 1..w {
            edges.push((y * w + x, (y - 1) * w + x - 1));
        }
    }
    for y in 0..h.saturating_sub(1) {
        for x in 1..w {
            edges.push((y * w + x, (y + 1) * w + x - 1));
        }
    }
    let mut weighted: Vec<(f64, (usize, usize))> = edges
        .into_iter()
        .map(|(a, b)| (cost(a, b), (a, b)))
        .collect();
    weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = h * w;
    let mut forest = Forest((0..n).collect());
    let mut size = vec![1usize; n];
    let mut internal = vec![0.0f64; n];
    for &(c, (a, b)) in &weighted {
        let (ra, rb) = (forest.root(a), forest.root(b));
        if ra == rb {
            continue;
        }
        let ta = (internal[ra] + scale / size[ra] as f64) as f32;
        let tb = (internal[rb] + scale / size[rb] as f64) as f32;
        if c < ta.min(tb) as f64 {
            let total = size[ra] + size[rb];
            let root = forest.join(ra, rb);
            size[root] = total;
            internal[root] = c;
        }
    }
    let min_size = p.min_size as usize;
    for &(_, (a, b)) in &weighted {
        let (ra, rb) = (forest.root(a), forest.root(b));
        if ra != rb && (size[ra] < min_size || size[rb] < min_size) {
            let total = size[ra] + size[rb];
            let root = forest.join(ra, rb);
            size[root] = total;
        }
    }
    Ok(compact((0..n).map(|i| forest.root(i)).collect()))
}

/// Each value replaced by its rank among the distinct values (NumPy's `unique` inverse).
pub fn compact(values: Vec<usize>) -> Vec<i64> {
    let mut distinct = values.clone();
    distinct.sort_unstable();
    distinct.dedup();
    values
        .iter()
        .map(|v| distinct.binary_search(v).unwrap_or(0) as i64)
        .collect()
}
