//! Sliding-window patching: the input is cut into overlapping windows over its spatial dims,
//! a method runs on each window, and the windows' attributions are blended back into one map.
//!
//! For models trained on patches, or volumes whose attribution does not fit in memory at once.
//! Windows are placed as MONAI's `sliding_window_inference` places them, so a model trained with
//! MONAI sees the windows it was validated on.

use anyhow::{bail, Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// MONAI's default `sigma_scale`: the Gaussian's sigma as a fraction of the window size.
const SIGMA_SCALE: f64 = 0.125;

/// The smallest Gaussian weight, relative to the centre's. MONAI floors at the smallest nonzero
/// value; a fixed floor keeps window borders from counting for (almost) nothing where only one
/// window covers them, e.g. at the input's edges.
const MIN_WEIGHT: f64 = 1e-3;

/// How overlapping windows are weighted where they meet.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Blending {
    /// Every voxel of a window counts the same: the plain average of the windows covering it.
    Mean,
    /// A window's centre counts more than its border (sigma = 1/8 of the window), which hides
    /// the seams that border effects of the model leave.
    #[default]
    Gaussian,
}

/// Sliding-window patching settings.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatchSpec {
    /// Window size per spatial dimension, in voxels (e.g. `[96, 96, 96]`); one entry per
    /// spatial dimension of the input. A dimension smaller than the window is taken whole.
    #[schemars(length(min = 1), inner(range(min = 1)))]
    pub size: Vec<i64>,
    /// Fraction of a window shared with its neighbour, in [0, 1). Default 0.25 (MONAI's).
    #[serde(default = "default_overlap")]
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub overlap: f64,
    /// How overlapping windows are weighted where they meet. Default: gaussian.
    #[serde(default)]
    pub blending: Blending,
}

fn default_overlap() -> f64 {
    0.25
}

/// One window, over the spatial dims only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Vec<i64>,
    pub size: Vec<i64>,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "window at {:?} of size {:?}", self.start, self.size)
    }
}

/// The windows over a spatial grid, in C order (the last dim moves fastest). They cover every
/// voxel, lie inside the grid, and all have the same size.
pub fn windows(spatial: &[i64], spec: &PatchSpec) -> Result<Vec<Window>> {
    check(spatial, spec)?;
    let per_dim: Vec<(i64, Vec<i64>)> = spatial
        .iter()
        .zip(&spec.size)
        .map(|(&n, &s)| starts(n, s, spec.overlap))
        .collect();
    let size: Vec<i64> = per_dim.iter().map(|(s, _)| *s).collect();
    let mut out = vec![Window {
        start: Vec::new(),
        size: size.clone(),
    }];
    for (_, starts) in &per_dim {
        out = out
            .into_iter()
            .flat_map(|w| {
                starts.iter().map(move |&s| {
                    let mut start = w.start.clone();
                    start.push(s);
                    Window {
                        start,
                        size: w.size.clone(),
                    }
                })
            })
            .collect();
    }
    Ok(out)
}

fn check(spatial: &[i64], spec: &PatchSpec) -> Result<()> {
    if spec.size.len() != spatial.len() {
        bail!(
            "patching.size has {} entries but the input has {} spatial dimensions {:?}; give one window size per spatial dimension",
            spec.size.len(),
            spatial.len(),
            spatial
        );
    }
    if let Some(bad) = spec.size.iter().find(|&&s| s < 1) {
        bail!(
            "patching.size {:?} has {bad}; window sizes must be at least 1",
            spec.size
        );
    }
    if !(0.0..1.0).contains(&spec.overlap) {
        bail!(
            "patching.overlap is {}; it must be at least 0 and less than 1 (e.g. 0.25 or 0.5)",
            spec.overlap
        );
    }
    if let Some(d) = spatial.iter().position(|&n| n < 1) {
        bail!("the input's spatial dimension {d} is empty (shape {spatial:?}); there is nothing to patch");
    }
    Ok(())
}

/// The window size and window starts along one dim of `n` voxels.
fn starts(n: i64, size: i64, overlap: f64) -> (i64, Vec<i64>) {
    let size = size.min(n);
    // Truncated as MONAI's `_get_scan_interval` does, so neighbours share at least `overlap`;
    // the epsilon keeps 20 * (1 - 0.9) = 1.9999999999999996 from becoming 1.
    let stride = ((size as f64 * (1.0 - overlap) + 1e-9).floor() as i64).max(1);
    let count = (n - size + stride - 1) / stride + 1;
    // The last window is moved back to end at the border instead of padding the input.
    (
        size,
        (0..count).map(|i| (i * stride).min(n - size)).collect(),
    )
}

/// Runs `attribute` on each window of `inputs` (`[B, C, ...spatial]`) and blends the windows'
/// attributions (each shaped as its window of the input) into a float32 map shaped as `inputs`,
/// on the input's device.
///
/// The window passed in is a view of `inputs`, not a copy. Only the full-size map, a full-size
/// weight map and one window's attribution are alive at a time.
pub fn attribute_patched(
    inputs: &Tensor,
    spec: &PatchSpec,
    mut attribute: impl FnMut(&Tensor, &Window) -> Result<Tensor>,
) -> Result<Tensor> {
    let shape = inputs.size();
    if shape.len() < 3 {
        bail!("patching needs an input shaped [B, C, ...spatial], got {shape:?}");
    }
    let spatial = &shape[2..];
    let windows = windows(spatial, spec)?;
    let device = inputs.device();
    let opts = (Kind::Float, device);
    let sum = Tensor::zeros(&shape, opts);
    let weight_sum = Tensor::zeros(spatial, opts);
    // All windows have one size, so one weight map serves them all.
    let weights = match spec.blending {
        Blending::Mean => None,
        Blending::Gaussian => Some(gaussian(&windows[0].size, device)?),
    };
    for (i, window) in windows.iter().enumerate() {
        let patch = narrow(inputs, window);
        let map = attribute(&patch, window)
            .with_context(|| format!("patch {} of {} ({window})", i + 1, windows.len()))?;
        let expected = patch.size();
        if map.size() != expected {
            bail!(
                "the attribution of patch {} of {} ({window}) has shape {:?}, but the patch has shape {expected:?}; a method under patching must return one value per input voxel",
                i + 1,
                windows.len(),
                map.size()
            );
        }
        // The method may have built a graph; the blend must not extend it or keep it alive.
        tch::no_grad(|| -> Result<()> {
            let map = map.detach().f_to_device(device)?.f_to_kind(Kind::Float)?;
            let mut into = narrow(&sum, window);
            let mut seen = narrow(&weight_sum, window);
            match &weights {
                None => {
                    let _ = into.f_add_(&map)?;
                    let _ = seen.f_add_scalar_(1.0)?;
                }
                Some(w) => {
                    let _ = into.f_add_(&map.f_mul(w)?)?;
                    let _ = seen.f_add_(w)?;
                }
            }
            Ok(())
        })?;
    }
    // Every voxel is under at least one window with weight >= MIN_WEIGHT, so this never divides by 0.
    Ok(tch::no_grad(|| sum.f_div(&weight_sum))?)
}

/// The part of `t` (`[..., ...spatial]`, spatial dims last) under a window; a view.
fn narrow(t: &Tensor, window: &Window) -> Tensor {
    let offset = t.dim() as i64 - window.start.len() as i64;
    window
        .start
        .iter()
        .zip(&window.size)
        .enumerate()
        .fold(t.shallow_clone(), |t, (d, (&s, &n))| {
            t.narrow(offset + d as i64, s, n)
        })
}

/// MONAI's Gaussian importance map over a window: separable, sigma = `SIGMA_SCALE` * size per
/// dim, centred (between the two middle voxels for even sizes, so it is symmetric), peak 1,
/// floored at `MIN_WEIGHT`.
fn gaussian(size: &[i64], device: Device) -> Result<Tensor> {
    let mut map = Tensor::ones([1i64], (Kind::Float, Device::Cpu));
    for (d, &n) in size.iter().enumerate() {
        let sigma = SIGMA_SCALE * n as f64;
        let centre = (n - 1) as f64 / 2.0;
        let g: Vec<f64> = (0..n)
            .map(|i| (-(i as f64 - centre).powi(2) / (2.0 * sigma * sigma)).exp())
            .collect();
        let peak = g.iter().cloned().fold(f64::MIN, f64::max);
        let g: Vec<f32> = g.iter().map(|v| (v / peak) as f32).collect();
        let mut shape = vec![1i64; size.len()];
        shape[d] = n;
        map = map.f_mul(&Tensor::from_slice(&g).f_reshape(&shape)?)?;
    }
    Ok(map.f_clamp_min(MIN_WEIGHT)?.f_to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: &[i64], overlap: f64, blending: Blending) -> PatchSpec {
        PatchSpec {
            size: size.to_vec(),
            overlap,
            blending,
        }
    }

    fn starts_1d(n: i64, size: i64, overlap: f64) -> Vec<i64> {
        windows(&[n], &spec(&[size], overlap, Blending::Mean))
            .unwrap()
            .iter()
            .map(|w| w.start[0])
            .collect()
    }

    /// How many windows cover each voxel.
    fn coverage(spatial: &[i64], windows: &[Window]) -> Tensor {
        let c = Tensor::zeros(spatial, (Kind::Float, Device::Cpu));
        for w in windows {
            let _ = narrow(&c, w).f_add_scalar_(1.0).unwrap();
        }
        c
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn starts_by_hand() {
        assert_eq!(starts_1d(10, 4, 0.5), vec![0, 2, 4, 6]);
        assert_eq!(starts_1d(10, 4, 0.0), vec![0, 4, 6]);
        assert_eq!(starts_1d(8, 4, 0.0), vec![0, 4]);
        assert_eq!(starts_1d(4, 4, 0.5), vec![0]);
        assert_eq!(starts_1d(10, 4, 0.25), vec![0, 3, 6]);
        // The stride never falls below one voxel.
        assert_eq!(starts_1d(6, 4, 0.9), vec![0, 1, 2]);
        let small = windows(&[3], &spec(&[4], 0.5, Blending::Mean)).unwrap();
        assert_eq!(
            small,
            vec![Window {
                start: vec![0],
                size: vec![3]
            }]
        );
    }

    #[test]
    fn windows_3d_count_and_order() {
        // Overlap 0.5 per dim: 10/4 -> 4 starts, 5/8 -> 1 (the whole dim), 9/3 -> stride 1, 7.
        let w = windows(&[10, 5, 9], &spec(&[4, 8, 3], 0.5, Blending::Mean)).unwrap();
        assert_eq!(w.len(), 4 * 7);
        // Overlap 0: 10/4 -> 0, 4, 6; 9/3 -> 0, 3, 6.
        let w0 = windows(&[10, 5, 9], &spec(&[4, 8, 3], 0.0, Blending::Mean)).unwrap();
        assert_eq!(w0.len(), 3 * 3);
        assert!(w.iter().all(|w| w.size == vec![4, 5, 3]));
        assert_eq!(w[0].start, vec![0, 0, 0]);
        assert_eq!(w[1].start, vec![0, 0, 1]);
        assert_eq!(w.last().unwrap().start, vec![6, 0, 6]);
    }

    #[test]
    fn windows_cover_every_voxel_and_stay_inside() {
        let cases: &[(&[i64], &[i64], f64)] = &[
            (&[10], &[4], 0.5),
            (&[17, 23], &[5, 7], 0.0),
            (&[17, 23], &[5, 7], 0.3),
            (&[31, 7], &[8, 9], 0.75),
            (&[13, 11, 19], &[4, 5, 6], 0.25),
            (&[9, 16, 5], &[3, 16, 2], 0.6),
            (&[64, 1, 33], &[32, 4, 32], 0.5),
        ];
        for &(spatial, size, overlap) in cases {
            let ws = windows(spatial, &spec(size, overlap, Blending::Gaussian)).unwrap();
            for w in &ws {
                for d in 0..spatial.len() {
                    assert!(
                        w.start[d] >= 0 && w.start[d] + w.size[d] <= spatial[d],
                        "{w} outside {spatial:?}"
                    );
                }
            }
            let min = coverage(spatial, &ws).min().double_value(&[]);
            assert!(
                min > 0.0,
                "{spatial:?} size {size:?} overlap {overlap}: a voxel is not covered"
            );
        }
    }

    #[test]
    fn identity_is_reproduced() {
        tch::manual_seed(0);
        for blending in [Blending::Mean, Blending::Gaussian] {
            for (shape, size) in [
                (vec![2i64, 3, 17, 23], vec![8i64, 6]),
                (vec![1, 2, 9, 12, 10], vec![4, 5, 16]),
            ] {
                let x = Tensor::randn(&shape, (Kind::Float, Device::Cpu));
                let out =
                    attribute_patched(
                        &x,
                        &spec(&size, 0.4, blending),
                        |p, _| Ok(p.shallow_clone()),
                    )
                    .unwrap();
                assert_eq!(out.size(), shape);
                assert!(max_abs_diff(&out, &x) < 1e-6, "{blending:?} {shape:?}");
            }
        }
    }

    #[test]
    fn pointwise_function_is_reproduced() {
        tch::manual_seed(1);
        for blending in [Blending::Mean, Blending::Gaussian] {
            let x = Tensor::randn([2, 1, 11, 7, 13], (Kind::Float, Device::Cpu));
            let f = |t: &Tensor| t * 2.0 + 1.0;
            let out =
                attribute_patched(&x, &spec(&[5, 4, 6], 0.5, blending), |p, _| Ok(f(p))).unwrap();
            assert!(max_abs_diff(&out, &f(&x)) < 1e-5, "{blending:?}");
        }
    }

    #[test]
    fn each_window_sees_its_part_of_the_input() {
        let x = Tensor::arange(2 * 10 * 12, (Kind::Float, Device::Cpu)).reshape([1, 2, 10, 12]);
        let mut calls = 0;
        let out = attribute_patched(&x, &spec(&[4, 5], 0.5, Blending::Mean), |p, w| {
            calls += 1;
            let expected = x
                .narrow(2, w.start[0], w.size[0])
                .narrow(3, w.start[1], w.size[1]);
            assert_eq!(max_abs_diff(p, &expected), 0.0);
            Ok(p.shallow_clone())
        })
        .unwrap();
        assert_eq!(max_abs_diff(&out, &x), 0.0);
        assert_eq!(
            calls,
            windows(&[10, 12], &spec(&[4, 5], 0.5, Blending::Mean))
                .unwrap()
                .len()
        );
    }

    #[test]
    fn gaussian_weights_peak_in_the_middle_and_never_vanish() {
        let g = gaussian(&[16, 9], Device::Cpu).unwrap();
        assert_eq!(g.size(), vec![16, 9]);
        assert!((g.max().double_value(&[]) - 1.0).abs() < 0.01);
        assert!(g.min().double_value(&[]) >= MIN_WEIGHT * 0.999);
        assert!(g.double_value(&[8, 4]) > g.double_value(&[0, 4]));
        // Symmetric for an even size.
        assert_eq!(g.double_value(&[0, 4]), g.double_value(&[15, 4]));
    }

    #[test]
    fn errors_name_the_setting() {
        let x = Tensor::zeros([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        let id = |p: &Tensor, _: &Window| Ok(p.shallow_clone());
        let e = attribute_patched(&x, &spec(&[4], 0.5, Blending::Mean), id)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("patching.size") && e.contains("1 entries") && e.contains("2 spatial"),
            "{e}"
        );
        let e = attribute_patched(&x, &spec(&[4, 4], 1.0, Blending::Mean), id)
            .unwrap_err()
            .to_string();
        assert!(e.contains("patching.overlap"), "{e}");
        let e = attribute_patched(&x, &spec(&[4, 4], -0.1, Blending::Mean), id)
            .unwrap_err()
            .to_string();
        assert!(e.contains("patching.overlap"), "{e}");
        let e = attribute_patched(&x, &spec(&[4, 4], f64::NAN, Blending::Mean), id)
            .unwrap_err()
            .to_string();
        assert!(e.contains("patching.overlap"), "{e}");
        let e = attribute_patched(&x, &spec(&[4, 0], 0.5, Blending::Mean), id)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("patching.size") && e.contains("at least 1"),
            "{e}"
        );
        let e = attribute_patched(
            &Tensor::zeros([8], (Kind::Float, Device::Cpu)),
            &spec(&[4], 0.5, Blending::Mean),
            id,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[B, C, ...spatial]"), "{e}");
    }

    #[test]
    fn wrong_returned_shape_is_an_error() {
        let x = Tensor::zeros([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        let e = attribute_patched(&x, &spec(&[4, 4], 0.0, Blending::Gaussian), |p, _| {
            Ok(p.sum_dim_intlist(1i64, false, Kind::Float))
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("patch 1 of 4") && e.contains("[1, 4, 4]") && e.contains("[1, 1, 4, 4]"),
            "{e}"
        );
    }

    #[test]
    fn a_failing_window_says_which() {
        let x = Tensor::zeros([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        let e = attribute_patched(&x, &spec(&[4, 4], 0.0, Blending::Mean), |p, w| {
            if w.start == [4, 4] {
                bail!("out of memory");
            }
            Ok(p.shallow_clone())
        })
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("patch 4 of 4") && e.contains("out of memory"),
            "{e}"
        );
    }

    #[test]
    fn spec_parses_with_defaults_and_rejects_unknown_fields() {
        let s: PatchSpec = serde_json::from_str(r#"{"size": [64, 64]}"#).unwrap();
        assert_eq!(s, spec(&[64, 64], 0.25, Blending::Gaussian));
        let s: PatchSpec =
            serde_json::from_str(r#"{"size": [8], "overlap": 0.5, "blending": "mean"}"#).unwrap();
        assert_eq!(s.blending, Blending::Mean);
        assert!(serde_json::from_str::<PatchSpec>(r#"{"size": [8], "overlapp": 0.5}"#).is_err());
        let schema = serde_json::to_value(schemars::schema_for!(PatchSpec)).unwrap();
        assert_eq!(schema["properties"]["overlap"]["exclusiveMaximum"], 1.0);
    }
}
