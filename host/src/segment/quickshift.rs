//! Quick shift (Vedaldi and Soatto, "Quick Shift and Kernel Methods for Mode Seeking", ECCV
//! 2008) as scikit-image 0.26's `segmentation.quickshift`: RGB to Lab (`convert2lab`),
//! Gaussian smoothing (`sigma`), colour scaled by `ratio`, a Parzen density with a Gaussian
//! kernel of width `kernel_size` over a window of `ceil(3 * kernel_size)`, and each pixel
//! linked to its nearest neighbour of higher density within the window unless that is
//! farther than `max_dist`; the trees are the segments. Ties in the density are broken by
//! noise of scale 1e-5 drawn as scikit-image draws it (NumPy's `default_rng(rng)`, see
//! [`super::numpy_random`]). 2D only, as scikit-image's.

use anyhow::{bail, ensure, Result};
use schemars::JsonSchema;
use serde::Deserialize;

use super::felzenszwalb::compact;
use super::numpy_random::NumpyRng;
use super::{gaussian, lab, Image};

/// scikit-image's `quickshift` parameters, with its defaults (lime's image explainer calls it
/// with `kernel_size=4, max_dist=200, ratio=0.2`).
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct QuickshiftParams {
    /// Balances colour and space proximity, between 0 and 1: higher weighs colour more.
    /// Default 1.
    #[serde(default = "one")]
    pub ratio: f64,
    /// Width of the Gaussian kernel of the density: higher gives fewer segments. Default 5.
    #[serde(default = "default_kernel")]
    pub kernel_size: f64,
    /// The farthest link between a pixel and its parent: higher gives fewer segments.
    /// Default 10.
    #[serde(default = "default_max_dist")]
    pub max_dist: f64,
    /// Gaussian smoothing before segmenting. Default 0.
    #[serde(default)]
    pub sigma: f64,
    /// Convert RGB to Lab first. Default true for 3 channels (scikit-image's default, which
    /// refuses other inputs), false otherwise.
    #[serde(default)]
    pub convert2lab: Option<bool>,
    /// Seed of the tie-breaking noise (NumPy's `default_rng`, as scikit-image). Default 42.
    #[serde(default = "default_rng")]
    pub rng: u64,
}

fn one() -> f64 {
    1.0
}
fn default_kernel() -> f64 {
    5.0
}
fn default_max_dist() -> f64 {
    10.0
}
fn default_rng() -> u64 {
    42
}

/// The labels of `image` (raster order), 0 upwards in the order of each tree's root pixel.
pub fn quickshift(image: &Image, p: &QuickshiftParams) -> Result<Vec<i64>> {
    ensure!(
        image.is_2d,
        "quickshift works on 2D images only (as scikit-image's); segment a volume with slic"
    );
    ensure!(
        p.kernel_size >= 1.0 && p.kernel_size.is_finite(),
        "quickshift: `kernel_size` must be at least 1 (it is {})",
        p.kernel_size
    );
    ensure!(
        p.max_dist >= 0.0 && p.ratio >= 0.0 && p.sigma >= 0.0,
        "quickshift: `max_dist`, `ratio` and `sigma` must be 0 or more (they are {}, {} and {})",
        p.max_dist,
        p.ratio,
        p.sigma
    );
    let lab = match p.convert2lab {
        Some(true) if image.channels != 3 => bail!(
            "quickshift: `convert2lab` needs an RGB input (3 channels); this one has {}. Set \
             it to false",
            image.channels
        ),
        Some(yes) => yes,
        None => image.channels == 3,
    };
    let mut img = if lab {
        lab::rgb2lab(image)
    } else {
        image.clone()
    };
    img = gaussian::smooth(&img, [0.0, p.sigma, p.sigma]);
    for v in img.data.iter_mut() {
        *v *= p.ratio;
    }
    let [_, h, w] = img.dims;
    let reach = (3.0 * p.kernel_size).ceil() as usize;
    let inv = -0.5 / (p.kernel_size * p.kernel_size);
    let dist = |r: usize, c: usize, r2: usize, c2: usize| -> f64 {
        let (a, b) = (img.pixel(r * w + c), img.pixel(r2 * w + c2));
        let mut d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        d += (r as f64 - r2 as f64).powi(2);
        d + (c as f64 - c2 as f64).powi(2)
    };
    let window = |i: usize, n: usize| i.saturating_sub(reach)..(i + reach + 1).min(n);
    let mut density = each_row(h, w, 0.0f64, |r, row| {
        for (c, out) in row.iter_mut().enumerate() {
            let mut sum = 0.0;
            for r2 in window(r, h) {
                for c2 in window(c, w) {
                    sum += (dist(r, c, r2, c2) * inv).exp();
                }
            }
            *out = sum;
        }
    });
    // scikit-image's tie-breaking noise: default_rng(rng).normal(scale=1e-5, size=(h, w)).
    let mut rng = NumpyRng::new(p.rng);
    for d in density.iter_mut() {
        *d += 1e-5 * rng.standard_normal();
    }
    let density = &density;
    let parent = each_row(h, w, 0usize, |r, row| {
        for (c, out) in row.iter_mut().enumerate() {
            let here = density[r * w + c];
            let (mut closest, mut link) = (f64::MAX, r * w + c);
            for r2 in window(r, h) {
                for c2 in window(c, w) {
                    if density[r2 * w + c2] > here {
                        let d = dist(r, c, r2, c2);
                        if d < closest {
                            closest = d;
                            link = r2 * w + c2;
                        }
                    }
                }
            }
            *out = if closest.sqrt() > p.max_dist { r * w + c } else { link };
        }
    });
    // Links point to higher densities, so following them ends at a root.
    let roots = (0..h * w)
        .map(|mut i| {
            while parent[i] != i {
                i = parent[i];
            }
            i
        })
        .collect();
    Ok(compact(roots))
}

/// A value for every pixel of an `h` x `w` image, `fill(row, values)` filling one row; rows
/// are split among libtorch's threads. Each pixel is computed alone, in the same order of
/// terms as on one thread, so the labels do not depend on the thread count.
fn each_row<T: Clone + Send>(
    h: usize,
    w: usize,
    zero: T,
    fill: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let mut values = vec![zero; h * w];
    let threads = (tch::get_num_threads().max(1) as usize).min(h.max(1));
    let rows_per = h.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (t, chunk) in values.chunks_mut(rows_per * w.max(1)).enumerate() {
            let fill = &fill;
            scope.spawn(move || {
                for (i, row) in chunk.chunks_mut(w.max(1)).enumerate() {
                    fill(t * rows_per + i, row);
                }
            });
        }
    });
    values
}
