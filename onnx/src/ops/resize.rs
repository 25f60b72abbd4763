//! Resize and the older Upsample: nearest (every nearest_mode), linear (bi-/trilinear) and
//! cubic (bicubic, any cubic_coeff_a, exclude_outside) interpolation, with the
//! coordinate_transformation_modes PyTorch's exporter writes (half_pixel, pytorch_half_pixel,
//! align_corners, asymmetric), from scales or sizes.
//!
//! The forms PyTorch's own upsampling computes (what its exporter writes for nn.Upsample and
//! F.interpolate) run on PyTorch's kernels, so values and gradients match PyTorch to the bit.
//! Every other form runs separably, one resized axis at a time, by gathering the source rows
//! (index_select) and, for linear and cubic, blending two or four of them, following the ONNX
//! formulas.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::{axis, floats, input, ints, optional};
use crate::attrs::Attrs;
use crate::graph_model::{Locality, NodeOp};

/// PyTorch's bicubic coefficient, which its exporter writes as `cubic_coeff_a`.
const TORCH_CUBIC_A: f32 = -0.75;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

pub struct Resize {
    mode: Mode,
    /// The cubic kernel's `a` (Keys' coefficient) and whether taps outside the input get no
    /// weight (the others renormalised) instead of repeating the edge.
    cubic_a: f32,
    exclude_outside: bool,
    coordinates: String,
    nearest: String,
    axes: Option<Vec<i64>>,
    /// Upsample (opset 7) kept its scales in an attribute.
    scales: Option<Vec<f32>>,
    /// The input holding the scales: 2 for Resize (after roi), 1 for Resize-10 and Upsample-9.
    scales_input: usize,
}

impl Resize {
    pub fn new(a: &Attrs, opset: i64) -> Result<Self> {
        let mode = a.choice("mode", "nearest", &["nearest", "linear", "cubic"])?;
        if a.int("antialias", 0)? != 0 {
            bail!("Resize with antialias=1 is not supported");
        }
        let policy = a.choice("keep_aspect_ratio_policy", "stretch", &["stretch"])?;
        debug_assert_eq!(policy, "stretch");
        let old = opset < 11;
        Ok(Resize {
            mode: match mode.as_str() {
                "linear" => Mode::Linear,
                "cubic" => Mode::Cubic,
                _ => Mode::Nearest,
            },
            cubic_a: a.float("cubic_coeff_a", TORCH_CUBIC_A)?,
            exclude_outside: a.int("exclude_outside", 0)? != 0,
            coordinates: if old {
                "asymmetric".into()
            } else {
                a.choice(
                    "coordinate_transformation_mode",
                    "half_pixel",
                    &[
                        "half_pixel",
                        "pytorch_half_pixel",
                        "align_corners",
                        "asymmetric",
                    ],
                )?
            },
            nearest: if old {
                "floor".into()
            } else {
                a.choice(
                    "nearest_mode",
                    "round_prefer_floor",
                    &["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
                )?
            },
            axes: a.ints("axes")?,
            scales: None,
            scales_input: if old { 1 } else { 2 },
        })
    }

    pub fn upsample(a: &Attrs) -> Result<Self> {
        let mode = a.choice("mode", "nearest", &["nearest", "linear", "bilinear"])?;
        Ok(Resize {
            mode: if mode == "nearest" {
                Mode::Nearest
            } else {
                Mode::Linear
            },
            cubic_a: TORCH_CUBIC_A,
            exclude_outside: false,
            coordinates: "asymmetric".into(),
            nearest: "floor".into(),
            axes: None,
            scales: a.floats("scales")?,
            scales_input: 1,
        })
    }

    /// Output size and scale for each axis of `size`, and whether the scales were given (not
    /// derived from sizes).
    fn targets(&self, inputs: &[Option<Tensor>], size: &[i64]) -> Result<(Vec<(i64, f64)>, bool)> {
        let rank = size.len() as i64;
        let axes: Vec<usize> = match &self.axes {
            Some(a) => a
                .iter()
                .map(|&v| axis(v, rank).map(|v| v as usize))
                .collect::<Result<_>>()?,
            None => (0..size.len()).collect(),
        };
        let scales = match (&self.scales, optional(inputs, self.scales_input)) {
            (Some(s), _) => Some(s.iter().map(|&v| v as f64).collect::<Vec<_>>()),
            (None, Some(t)) if t.numel() > 0 => Some(floats(t)?),
            _ => None,
        };
        let sizes = match optional(inputs, 3) {
            Some(t) if t.numel() > 0 && self.scales_input == 2 => Some(ints(t)?),
            _ => None,
        };
        let mut targets: Vec<(i64, f64)> = size.iter().map(|&n| (n, 1.0)).collect();
        let given = scales.is_some();
        match (scales, sizes) {
            (Some(scales), _) => {
                check_len(scales.len(), axes.len())?;
                for (&ax, &s) in axes.iter().zip(&scales) {
                    if s <= 0.0 {
                        bail!("Resize scales must be positive, got {scales:?}");
                    }
                    targets[ax] = (((size[ax] as f64) * s).floor() as i64, s);
                }
            }
            (None, Some(sizes)) => {
                check_len(sizes.len(), axes.len())?;
                for (&ax, &n) in axes.iter().zip(&sizes) {
                    targets[ax] = (n, n as f64 / size[ax] as f64);
                }
            }
            (None, None) => bail!("Resize needs either scales or sizes"),
        }
        Ok((targets, given))
    }

    /// PyTorch's upsampling kernel for this resize, when it computes exactly the ONNX form:
    /// batch and channels untouched, 1 to 3 spatial axes, and linear with align_corners or
    /// half_pixel (pytorch_half_pixel while no axis shrinks to 1), cubic the same way on 2
    /// axes with PyTorch's coefficient and edge taps, or nearest with asymmetric coordinates
    /// rounded down.
    fn native(&self, x: &Tensor, targets: &[(i64, f64)], given: bool) -> Result<Option<Tensor>> {
        let size = x.size();
        let n = size.len();
        if !(3..=5).contains(&n)
            || targets[..2]
                .iter()
                .zip(&size)
                .any(|(t, &s)| t.0 != s || t.1 != 1.0)
        {
            return Ok(None);
        }
        let out: Vec<i64> = targets[2..].iter().map(|t| t.0).collect();
        let scales: Vec<Option<f64>> = targets[2..].iter().map(|t| given.then_some(t.1)).collect();
        let s = |i: usize| scales.get(i).copied().flatten();
        let half_pixel = match self.coordinates.as_str() {
            "half_pixel" => true,
            "pytorch_half_pixel" => out.iter().all(|&o| o > 1),
            _ => false,
        };
        let torch_cubic = out.len() == 2 && self.cubic_a == TORCH_CUBIC_A && !self.exclude_outside;
        let y = match (self.mode, self.coordinates.as_str()) {
            (Mode::Linear, "align_corners") => linear_kernel(x, &out, true, &[None, None, None])?,
            (Mode::Linear, _) if half_pixel => linear_kernel(x, &out, false, &[s(0), s(1), s(2)])?,
            (Mode::Cubic, "align_corners") if torch_cubic => {
                x.f_upsample_bicubic2d(&out, true, None, None)?
            }
            (Mode::Cubic, _) if torch_cubic && half_pixel => {
                x.f_upsample_bicubic2d(&out, false, s(0), s(1))?
            }
            (Mode::Nearest, "asymmetric") if self.nearest == "floor" => match out.len() {
                1 => x.f_upsample_nearest1d(&out, s(0))?,
                2 => x.f_upsample_nearest2d(&out, s(0), s(1))?,
                _ => x.f_upsample_nearest3d(&out, s(0), s(1), s(2))?,
            },
            _ => return Ok(None),
        };
        Ok(Some(y))
    }

    /// The source coordinate of each output index along one axis.
    fn source(&self, out: i64, len: i64, scale: f64) -> Vec<f64> {
        (0..out)
            .map(|i| {
                let i = i as f64;
                match self.coordinates.as_str() {
                    "align_corners" if out > 1 => i * (len - 1) as f64 / (out - 1) as f64,
                    "align_corners" => 0.0,
                    "asymmetric" => i / scale,
                    "pytorch_half_pixel" if out <= 1 => 0.0,
                    _ => (i + 0.5) / scale - 0.5,
                }
            })
            .collect()
    }

    fn nearest_index(&self, x: f64) -> f64 {
        let frac = x - x.floor();
        match self.nearest.as_str() {
            "floor" => x.floor(),
            "ceil" => x.ceil(),
            "round_prefer_ceil" if frac == 0.5 => x.ceil(),
            "round_prefer_floor" if frac == 0.5 => x.floor(),
            _ => x.round(),
        }
    }

    fn resize_axis(&self, x: &Tensor, ax: usize, out: i64, scale: f64) -> Result<Tensor> {
        let len = x.size()[ax];
        if len < 1 {
            bail!("Resize of an empty axis {ax}");
        }
        let coords = self.source(out, len, scale);
        let clamp = |v: f64| (v as i64).clamp(0, len - 1);
        let device = x.device();
        let index = |v: Vec<i64>| Tensor::from_slice(&v).f_to_device(device);
        if self.mode == Mode::Cubic {
            return self.cubic_axis(x, ax, &coords);
        }
        if self.mode == Mode::Nearest {
            let idx: Vec<i64> = coords
                .iter()
                .map(|&c| clamp(self.nearest_index(c)))
                .collect();
            return Ok(x.f_index_select(ax as i64, &index(idx)?)?);
        }
        let lower: Vec<i64> = coords.iter().map(|&c| clamp(c.floor())).collect();
        let upper: Vec<i64> = coords.iter().map(|&c| clamp(c.floor() + 1.0)).collect();
        let weights: Vec<f64> = coords.iter().map(|&c| c - c.floor()).collect();
        let mut shape = vec![1i64; x.dim()];
        shape[ax] = out;
        let w = Tensor::from_slice(&weights)
            .f_to_kind(x.kind())?
            .f_reshape(&shape)?
            .f_to_device(device)?;
        let a = x.f_index_select(ax as i64, &index(lower)?)?;
        let b = x.f_index_select(ax as i64, &index(upper)?)?;
        Ok(a.f_add(&(b.f_sub(&a)?.f_mul(&w)?))?)
    }

    /// Keys' cubic convolution weight at distance `d` from a source position.
    fn cubic_weight(&self, d: f64) -> f64 {
        let a = self.cubic_a as f64;
        let d = d.abs();
        if d <= 1.0 {
            ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
        } else if d < 2.0 {
            ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
        } else {
            0.0
        }
    }

    /// Cubic interpolation along one axis: four taps around each source coordinate, the
    /// edge repeated outside the input (or, with exclude_outside, those taps weighted 0 and
    /// the rest renormalised).
    fn cubic_axis(&self, x: &Tensor, ax: usize, coords: &[f64]) -> Result<Tensor> {
        let len = x.size()[ax];
        let out = coords.len() as i64;
        let mut shape = vec![1i64; x.dim()];
        shape[ax] = out;
        let mut y: Option<Tensor> = None;
        let taps: Vec<Vec<(i64, f64)>> = coords
            .iter()
            .map(|&c| {
                let base = c.floor();
                let t = c - base;
                let mut row: Vec<(i64, f64)> = (-1..=2)
                    .map(|o| (base as i64 + o, self.cubic_weight(t - o as f64)))
                    .collect();
                if self.exclude_outside {
                    for tap in &mut row {
                        if tap.0 < 0 || tap.0 >= len {
                            tap.1 = 0.0;
                        }
                    }
                    let total: f64 = row.iter().map(|t| t.1).sum();
                    for tap in &mut row {
                        tap.1 /= total;
                    }
                }
                row
            })
            .collect();
        for tap in 0..4 {
            let idx: Vec<i64> = taps.iter().map(|r| r[tap].0.clamp(0, len - 1)).collect();
            let w: Vec<f64> = taps.iter().map(|r| r[tap].1).collect();
            let w = Tensor::from_slice(&w)
                .f_to_kind(x.kind())?
                .f_reshape(&shape)?
                .f_to_device(x.device())?;
            let index = Tensor::from_slice(&idx).f_to_device(x.device())?;
            let term = x.f_index_select(ax as i64, &index)?.f_mul(&w)?;
            y = Some(match y {
                Some(acc) => acc.f_add(&term)?,
                None => term,
            });
        }
        Ok(y.expect("four taps"))
    }
}

fn linear_kernel(x: &Tensor, out: &[i64], align: bool, s: &[Option<f64>; 3]) -> Result<Tensor> {
    Ok(match out.len() {
        1 => x.f_upsample_linear1d(out, align, s[0])?,
        2 => x.f_upsample_bilinear2d(out, align, s[0], s[1])?,
        _ => x.f_upsample_trilinear3d(out, align, s[0], s[1], s[2])?,
    })
}

fn check_len(got: usize, want: usize) -> Result<()> {
    if got != want {
        bail!("Resize got {got} scales or sizes for {want} axes");
    }
    Ok(())
}

impl NodeOp for Resize {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        if x.kind() == Kind::Bool {
            bail!("Resize of a boolean tensor");
        }
        let size = x.size();
        let (targets, given) = self.targets(inputs, &size)?;
        if targets.iter().any(|t| t.0 < 1) {
            bail!("Resize would make an axis of shape {size:?} empty");
        }
        if let Some(y) = self.native(x, &targets, given)? {
            return Ok(vec![y]);
        }
        let mut y = x.shallow_clone();
        for (ax, &(out, scale)) in targets.iter().enumerate() {
            if out != size[ax] || (scale - 1.0).abs() > 0.0 {
                y = self.resize_axis(&y, ax, out, scale)?;
            }
        }
        Ok(vec![y])
    }

    /// Integer upsampling from given scales, with coordinates that move with the window
    /// (align_corners does not), is local; sizes would not follow a window of the input.
    /// Cubic taps reach two input positions, beyond what [`Locality::Upsample`] allows.
    fn locality(&self, inputs: &[Option<Tensor>]) -> Result<Locality> {
        if self.mode == Mode::Cubic {
            return Ok(Locality::Global);
        }
        let size = input(inputs, 0, "X")?.size();
        let (targets, given) = self.targets(inputs, &size)?;
        let moves = matches!(
            self.coordinates.as_str(),
            "half_pixel" | "pytorch_half_pixel" | "asymmetric"
        );
        if !given || !moves || size.len() < 3 || targets[..2].iter().any(|t| t.1 != 1.0) {
            return Ok(Locality::Global);
        }
        let mut factors = Vec::new();
        for (&(out, scale), &n) in targets[2..].iter().zip(&size[2..]) {
            let f = out / n;
            if f < 1 || out != n * f || scale != f as f64 {
                return Ok(Locality::Global);
            }
            factors.push(f);
        }
        Ok(Locality::Upsample { factors })
    }
}
