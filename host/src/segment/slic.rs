//! SLIC superpixels and supervoxels (Achanta et al., "SLIC Superpixels Compared to
//! State-of-the-art Superpixel Methods", TPAMI 2012) as scikit-image 0.26's
//! `segmentation.slic`: the image rescaled to [0, 1] (over the ROI when there is one), RGB
//! converted to Lab, optional Gaussian smoothing, k-means in (colour / compactness, space /
//! step) within a window of twice the grid step around each centre, SLICO's adaptive colour
//! normalisation (`slic_zero`), maskSLIC's seeds in an ROI, and the connectivity
//! post-processing that merges small fragments.

use anyhow::{bail, ensure, Result};
use schemars::JsonSchema;
use serde::Deserialize;

use super::connectivity::enforce_connectivity;
use super::slic_seeds::{grid_centroids, mask_centroids, regular_grid};
use super::{gaussian, lab, Image};

/// scikit-image's `slic` parameters, with its defaults.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct SlicParams {
    /// The approximate number of segments. Default 100.
    #[serde(default = "default_segments")]
    pub n_segments: i64,
    /// Balances colour and space proximity: higher gives more compact, squarer segments
    /// (the initial compactness with `slic_zero`). Default 10.
    #[serde(default = "default_compactness")]
    pub compactness: f64,
    /// The most k-means iterations. Default 10.
    #[serde(default = "default_iterations")]
    pub max_num_iter: i64,
    /// Gaussian smoothing before segmenting: one width for every spatial axis (divided by
    /// `spacing` along each), or one per axis. Default 0, none.
    #[serde(default)]
    pub sigma: Widths,
    /// The voxel spacing per spatial axis, weighting distances along each. Default uniform.
    #[serde(default)]
    pub spacing: Option<Vec<f64>>,
    /// Convert RGB to Lab first. Default: when the input has 3 channels (true on other
    /// channel counts is refused).
    #[serde(default)]
    pub convert2lab: Option<bool>,
    /// Merge fragments smaller than `min_size_factor` of the mean segment size into a
    /// neighbour, so every segment is connected. Default true.
    #[serde(default = "crate::segment::spec::yes")]
    pub enforce_connectivity: bool,
    /// Smallest fragment kept, as a fraction of the mean segment size. Default 0.5.
    #[serde(default = "default_min_factor")]
    pub min_size_factor: f64,
    /// Largest segment, as a multiple of the mean segment size. Default 3.
    #[serde(default = "default_max_factor")]
    pub max_size_factor: f64,
    /// SLICO, the zero-parameter mode: each segment's colour distance normalised by its
    /// largest so far. Default false.
    #[serde(default)]
    pub slic_zero: bool,
    /// The first label, 0 or 1 (with a `mask`, `start_label - 1` marks outside it). Default 1.
    #[serde(default = "default_start")]
    pub start_label: i64,
    /// An ROI file (npy, NIfTI, PNG) on the input's spatial grid: segments only where it is
    /// non-zero, seeds spread over it (maskSLIC). Default: the whole input.
    #[serde(default)]
    pub mask: Option<String>,
}

/// A width for every axis, or one per axis.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(untagged)]
pub enum Widths {
    All(f64),
    PerAxis(Vec<f64>),
}

impl Default for Widths {
    fn default() -> Self {
        Widths::All(0.0)
    }
}

fn default_segments() -> i64 {
    100
}
fn default_compactness() -> f64 {
    10.0
}
fn default_iterations() -> i64 {
    10
}
fn default_min_factor() -> f64 {
    0.5
}
fn default_max_factor() -> f64 {
    3.0
}
fn default_start() -> i64 {
    1
}

impl SlicParams {
    /// Refuses values scikit-image refuses or cannot mean, naming the parameter.
    pub fn check(&self) -> Result<()> {
        ensure!(
            (1..=1 << 31).contains(&self.n_segments),
            "slic: `n_segments` must be at least 1 and at most 2^31 (it is {})",
            self.n_segments
        );
        ensure!(
            self.compactness > 0.0 && self.compactness.is_finite(),
            "slic: `compactness` must be a positive number (it is {})",
            self.compactness
        );
        ensure!(
            self.max_num_iter >= 0,
            "slic: `max_num_iter` must be 0 or more (it is {})",
            self.max_num_iter
        );
        ensure!(
            self.start_label == 0 || self.start_label == 1,
            "slic: `start_label` must be 0 or 1 (it is {})",
            self.start_label
        );
        ensure!(
            self.min_size_factor >= 0.0 && self.max_size_factor > 0.0,
            "slic: `min_size_factor` must be 0 or more and `max_size_factor` positive (they \
             are {} and {})",
            self.min_size_factor,
            self.max_size_factor
        );
        let widths = match &self.sigma {
            Widths::All(s) => vec![*s],
            Widths::PerAxis(v) => v.clone(),
        };
        ensure!(
            widths.iter().all(|s| *s >= 0.0 && s.is_finite()),
            "slic: `sigma` must be 0 or more (it is {widths:?})"
        );
        if let Some(spacing) = &self.spacing {
            ensure!(
                spacing.iter().all(|s| *s > 0.0 && s.is_finite()),
                "slic: every `spacing` must be positive (it is {spacing:?})"
            );
        }
        Ok(())
    }
}

/// Per spatial axis `(z, y, x)`, a 2D image's depth axis getting `pad`.
fn per_axis(values: &[f64], image: &Image, name: &str, pad: f64) -> Result<[f64; 3]> {
    let wanted = if image.is_2d { 2 } else { 3 };
    if values.len() != wanted {
        bail!(
            "slic: `{name}` has {} values, but the input has {wanted} spatial dimensions; \
             give one per dimension",
            values.len()
        );
    }
    Ok(if image.is_2d {
        [pad, values[0], values[1]]
    } else {
        [values[0], values[1], values[2]]
    })
}

/// The labels of `image` (raster order), `mask` the ROI when given.
pub fn slic(image: &Image, p: &SlicParams, mask: Option<&[bool]>) -> Result<Vec<i64>> {
    p.check()?;
    let multichannel = image.channels > 1;
    let mut img = rescaled(image, mask)?;
    let lab = match p.convert2lab {
        Some(true) if image.channels != 3 => bail!(
            "slic: `convert2lab` needs an RGB input (3 channels); this one has {}. Leave it \
             out or set it to false",
            image.channels
        ),
        Some(yes) => yes,
        None => image.channels == 3,
    };
    if lab {
        img = lab::rgb2lab(&img);
    }
    let spacing = match &p.spacing {
        Some(s) => per_axis(s, image, "spacing", 1.0)?,
        None => [1.0; 3],
    };
    let sigma = match &p.sigma {
        Widths::All(s) => [s / spacing[0], s / spacing[1], s / spacing[2]],
        Widths::PerAxis(v) => per_axis(v, image, "sigma", 0.0)?,
    };
    if sigma.iter().any(|&s| s > 0.0) {
        img = gaussian::smooth(&img, sigma);
    }
    let n = p.n_segments as usize;
    let (centroids, steps) = match mask {
        // scikit-image counts the spatial dims of its 3D mask array less one for colour.
        Some(m) => mask_centroids(m, image.dims, n, if multichannel { 2 } else { 3 }),
        None => grid_centroids(image.dims, n),
    };
    let step = steps.iter().cloned().fold(0.0, f64::max);
    let ratio = 1.0 / p.compactness;
    let features: Vec<f64> = img.data.iter().map(|v| v * ratio).collect();
    let colour = img.with_data(img.channels, features);
    let mut clusters = Clusters::new(&centroids, colour.channels);
    let iterations = p.max_num_iter as usize;
    let run = Kmeans {
        image: &colour,
        mask,
        step,
        spacing,
        slic_zero: p.slic_zero,
        iterations,
    };
    if mask.is_some() {
        run.cluster(&mut clusters, true);
    }
    let nearest = run.cluster(&mut clusters, false);
    let start = p.start_label;
    let mut labels: Vec<i64> = nearest
        .iter()
        .map(|&k| cluster_of(k).map_or(start - 1, |k| k as i64 + start))
        .collect();
    if p.enforce_connectivity {
        let inside = mask.map_or(image.pixels(), |m| m.iter().filter(|&&b| b).count());
        let size = inside as f64 / clusters.count() as f64;
        let min_size = (p.min_size_factor * size) as usize;
        let max_size = (p.max_size_factor * size) as usize;
        labels = enforce_connectivity(&labels, image.dims, min_size, max_size, start);
    }
    Ok(labels)
}

/// The image minus its minimum, over its range (over the ROI's values with a mask).
fn rescaled(image: &Image, mask: Option<&[bool]>) -> Result<Image> {
    let values = image
        .data
        .chunks_exact(image.channels)
        .enumerate()
        .filter(|(i, _)| mask.is_none_or(|m| m[*i]))
        .flat_map(|(_, px)| px.iter().copied());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    ensure!(
        lo.is_finite(),
        "slic: the `mask` selects no pixel of the input"
    );
    let range = if hi != lo { hi - lo } else { 1.0 };
    let data = image.data.iter().map(|v| (v - lo) / range).collect();
    Ok(image.with_data(image.channels, data))
}

/// No cluster (outside the mask, or outside every cluster's window).
const NONE: u32 = u32::MAX;

fn cluster_of(k: u32) -> Option<usize> {
    (k != NONE).then_some(k as usize)
}

/// The cluster centres: `(z, y, x)` then the colour, per cluster.
struct Clusters {
    centres: Vec<Vec<f64>>,
    /// SLICO's largest colour distance per cluster.
    max_colour: Vec<f64>,
}

impl Clusters {
    fn new(seeds: &[[f64; 3]], channels: usize) -> Self {
        let centres = seeds
            .iter()
            .map(|s| {
                let mut c = s.to_vec();
                c.resize(3 + channels, 0.0);
                c
            })
            .collect();
        Clusters {
            centres,
            max_colour: vec![1.0; seeds.len()],
        }
    }

    fn count(&self) -> usize {
        self.centres.len()
    }
}

struct Kmeans<'a> {
    image: &'a Image,
    mask: Option<&'a [bool]>,
    step: f64,
    spacing: [f64; 3],
    slic_zero: bool,
    iterations: usize,
}

impl Kmeans<'_> {
    /// Up to `iterations` rounds of assignment and update; the cluster of every pixel (none
    /// outside the mask). `ignore_colour` moves the centres by space alone (maskSLIC's
    /// first pass).
    fn cluster(&self, clusters: &mut Clusters, ignore_colour: bool) -> Vec<u32> {
        let [d, h, w] = self.image.dims;
        let c = self.image.channels;
        let grid = regular_grid(self.image.dims, clusters.count());
        let window = grid.map(|a| 2 * a.step as i64);
        let mut nearest: Vec<u32> = vec![NONE; d * h * w];
        let mut distance = vec![f64::MAX; d * h * w];
        // SLICO's maxima start afresh in each pass (maskSLIC's spatial one, then the real one).
        clusters.max_colour.fill(1.0);
        // Rows (z, y) are split among libtorch's threads; each row takes its clusters in the
        // same order as one thread would, so the labels do not depend on the thread count.
        let threads = (tch::get_num_threads().max(1) as usize).min(d * h);
        let rows_per = (d * h).div_ceil(threads);
        for _ in 0..self.iterations {
            distance.fill(f64::MAX);
            let change = std::thread::scope(|scope| {
                let jobs: Vec<_> = nearest
                    .chunks_mut(rows_per * w)
                    .zip(distance.chunks_mut(rows_per * w))
                    .enumerate()
                    .map(|(t, (near, dist))| {
                        let rows = t * rows_per..((t + 1) * rows_per).min(d * h);
                        let clusters = &*clusters;
                        scope.spawn(move || {
                            self.assign(clusters, ignore_colour, window, rows, near, dist)
                        })
                    })
                    .collect();
                jobs.into_iter()
                    .map(|j| j.join().unwrap_or(false))
                    .fold(false, |a, b| a | b)
            });
            if !change {
                break;
            }
            self.update(clusters, &nearest, c);
        }
        nearest
    }

    /// The assignment step over the rows `rows` (`z * height + y`), whose pixels `nearest`
    /// and `distance` hold; whether any pixel was claimed.
    fn assign(
        &self,
        clusters: &Clusters,
        ignore_colour: bool,
        window: [i64; 3],
        rows: std::ops::Range<usize>,
        nearest: &mut [u32],
        distance: &mut [f64],
    ) -> bool {
        let [d, h, w] = self.image.dims;
        let c = self.image.channels;
        let weight = 1.0 / (self.step * self.step);
        let offset = rows.start * w;
        let mut change = false;
        for (k, centre) in clusters.centres.iter().enumerate() {
            if centre.iter().any(|v| v.is_nan()) {
                continue;
            }
            let range = |axis: usize, n: usize| {
                let lo = (centre[axis] - window[axis] as f64).max(0.0) as usize;
                let hi = (centre[axis] + window[axis] as f64 + 1.0).min(n as f64) as usize;
                lo..hi
            };
            let xs = range(2, w);
            for z in range(0, d) {
                let dz = (self.spacing[0] * (centre[0] - z as f64)).powi(2);
                for y in range(1, h) {
                    if !rows.contains(&(z * h + y)) {
                        continue;
                    }
                    let dy = (self.spacing[1] * (centre[1] - y as f64)).powi(2);
                    let row = (z * h + y) * w;
                    let (lo, hi) = (row + xs.start, row + xs.end);
                    let pixels = &self.image.data[lo * c..hi * c];
                    let near = &mut nearest[lo - offset..hi - offset];
                    let dist_row = &mut distance[lo - offset..hi - offset];
                    let inside = self.mask.map(|m| &m[lo..hi]);
                    if c == 1 && inside.is_none() && !ignore_colour {
                        // The common case of a grey volume, without the general loop's checks.
                        let (m, divide) = (centre[3], clusters.max_colour[k]);
                        for (j, ((v, best), label)) in pixels
                            .iter()
                            .zip(dist_row.iter_mut())
                            .zip(near.iter_mut())
                            .enumerate()
                        {
                            let dx =
                                (self.spacing[2] * (centre[2] - (xs.start + j) as f64)).powi(2);
                            let mut colour = (v - m) * (v - m);
                            if self.slic_zero {
                                colour /= divide;
                            }
                            let dist = (dz + dy + dx) * weight + colour;
                            if *best > dist {
                                *label = k as u32;
                                *best = dist;
                                change = true;
                            }
                        }
                        continue;
                    }
                    for (j, ((px, best), label)) in pixels
                        .chunks_exact(c)
                        .zip(dist_row.iter_mut())
                        .zip(near.iter_mut())
                        .enumerate()
                    {
                        if inside.is_some_and(|m| !m[j]) {
                            continue;
                        }
                        let x = (xs.start + j) as f64;
                        let dx = (self.spacing[2] * (centre[2] - x)).powi(2);
                        let mut dist = (dz + dy + dx) * weight;
                        if !ignore_colour {
                            let mut colour = 0.0;
                            for (v, m) in px.iter().zip(&centre[3..]) {
                                colour += (v - m) * (v - m);
                            }
                            if self.slic_zero {
                                colour /= clusters.max_colour[k];
                            }
                            dist += colour;
                        }
                        if *best > dist {
                            *label = k as u32;
                            *best = dist;
                            change = true;
                        }
                    }
                }
            }
        }
        change
    }

    /// Each centre to the mean position and colour of its pixels (NaN for a cluster left
    /// without any, which then claims none, as in scikit-image); SLICO's maxima updated.
    fn update(&self, clusters: &mut Clusters, nearest: &[u32], c: usize) {
        let [_, h, w] = self.image.dims;
        let mut counts = vec![0usize; clusters.count()];
        for centre in clusters.centres.iter_mut() {
            centre.fill(0.0);
        }
        for (i, k) in nearest.iter().enumerate() {
            let Some(k) = cluster_of(*k) else { continue };
            if self.mask.is_some_and(|m| !m[i]) {
                continue;
            }
            counts[k] += 1;
            let centre = &mut clusters.centres[k];
            centre[0] += (i / (h * w)) as f64;
            centre[1] += ((i / w) % h) as f64;
            centre[2] += (i % w) as f64;
            for (ch, v) in self.image.pixel(i).iter().enumerate() {
                centre[3 + ch] += v;
            }
        }
        for (centre, &n) in clusters.centres.iter_mut().zip(&counts) {
            for v in centre.iter_mut() {
                *v /= n as f64;
            }
        }
        if self.slic_zero {
            for (i, k) in nearest.iter().enumerate() {
                let Some(k) = cluster_of(*k) else { continue };
                let centre = &clusters.centres[k];
                let colour: f64 = (0..c)
                    .map(|ch| (self.image.pixel(i)[ch] - centre[3 + ch]).powi(2))
                    .sum();
                if clusters.max_colour[k] < colour {
                    clusters.max_colour[k] = colour;
                }
            }
        }
    }
}
