//! Conv and ConvTranspose (1D/2D/3D, groups, dilations, pads, auto_pad, output_padding), plus
//! the padding arithmetic that pools share.

use anyhow::{bail, Result};
use tch::Tensor;

use super::{input, optional};
use crate::attrs::Attrs;
use crate::graph_model::{Locality, NodeOp, SlidingWindow};

/// The window geometry shared by convolutions and pools.
pub struct Window {
    pub auto_pad: String,
    pub kernel: Option<Vec<i64>>,
    pub strides: Option<Vec<i64>>,
    pub dilations: Option<Vec<i64>>,
    pub pads: Option<Vec<i64>>,
}

impl Window {
    pub fn new(a: &Attrs) -> Result<Self> {
        let w = Window {
            auto_pad: a.choice(
                "auto_pad",
                "NOTSET",
                &["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
            )?,
            kernel: a.ints("kernel_shape")?,
            strides: a.ints("strides")?,
            dilations: a.ints("dilations")?,
            pads: a.ints("pads")?,
        };
        if let Some(p) = &w.pads {
            if p.len() % 2 != 0 || p.iter().any(|&v| v < 0) {
                bail!("the attribute `pads` {p:?} should hold a begin and an end per axis, none negative");
            }
        }
        if w.strides
            .iter()
            .flatten()
            .chain(w.dilations.iter().flatten())
            .any(|&v| v < 1)
        {
            bail!("strides and dilations must be at least 1");
        }
        Ok(w)
    }

    pub fn strides(&self, n: usize) -> Vec<i64> {
        self.strides.clone().unwrap_or(vec![1; n])
    }

    pub fn dilations(&self, n: usize) -> Vec<i64> {
        self.dilations.clone().unwrap_or(vec![1; n])
    }

    /// Begin and end pads per spatial axis for an input of spatial size `size` and a kernel of
    /// spatial size `kernel`.
    pub fn pads(&self, size: &[i64], kernel: &[i64]) -> Result<(Vec<i64>, Vec<i64>)> {
        let n = size.len();
        let (strides, dilations) = (self.strides(n), self.dilations(n));
        if strides.len() != n || dilations.len() != n || kernel.len() != n {
            bail!(
                "strides {strides:?}, dilations {dilations:?} and kernel {kernel:?} do not \
                 match the input's {n} spatial axes"
            );
        }
        match self.auto_pad.as_str() {
            "VALID" => Ok((vec![0; n], vec![0; n])),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut begins = Vec::with_capacity(n);
                let mut ends = Vec::with_capacity(n);
                for i in 0..n {
                    let out = (size[i] + strides[i] - 1) / strides[i];
                    let extent = (kernel[i] - 1) * dilations[i] + 1;
                    let total = ((out - 1) * strides[i] + extent - size[i]).max(0);
                    let small = total / 2;
                    let (b, e) = if self.auto_pad == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    begins.push(b);
                    ends.push(e);
                }
                Ok((begins, ends))
            }
            _ => match &self.pads {
                None => Ok((vec![0; n], vec![0; n])),
                Some(p) if p.len() == 2 * n => Ok((p[..n].to_vec(), p[n..].to_vec())),
                Some(p) => bail!("`pads` {p:?} does not match the input's {n} spatial axes"),
            },
        }
    }
}

impl Window {
    /// The geometry incremental evaluation needs, for an input of spatial size `size`.
    pub fn sliding(&self, size: &[i64], kernel: &[i64], pad_value: f64) -> Result<SlidingWindow> {
        let n = size.len();
        let (begins, _) = self.pads(size, kernel)?;
        let dilations = self.dilations(n);
        Ok(SlidingWindow {
            extent: (0..n).map(|i| (kernel[i] - 1) * dilations[i] + 1).collect(),
            stride: self.strides(n),
            pad_begin: begins,
            pad_value,
        })
    }
}

/// torch's pad list (last axis first) for per-axis begins and ends.
pub fn torch_pad(begins: &[i64], ends: &[i64]) -> Vec<i64> {
    begins
        .iter()
        .zip(ends)
        .rev()
        .flat_map(|(&b, &e)| [b, e])
        .collect()
}

fn spatial(x: &Tensor, what: &str) -> Result<Vec<i64>> {
    let size = x.size();
    if !(3..=5).contains(&size.len()) {
        bail!("{what} expects a [N, C, ...] input with 1 to 3 spatial axes, got shape {size:?}");
    }
    Ok(size[2..].to_vec())
}

/// The bias (input 2), one value per output channel. PyTorch 2.13's exporter, unoptimised,
/// gives a bias-less 3D convolution the zero bias `Expand(0, [C_out, 2])` (onnx.reference
/// fails on it too); a bias whose extra axes repeat one value per channel is read as that
/// value, any other shape is refused.
fn bias(inputs: &[Option<Tensor>], op: &str) -> Result<Option<Tensor>> {
    let Some(b) = optional(inputs, 2) else {
        return Ok(None);
    };
    // oneDNN's convolution reads the bias as dense memory: an expanded (stride 0) bias, as
    // the exporter's Expand makes, would give it garbage.
    if b.dim() <= 1 {
        return Ok(Some(b.f_contiguous()?));
    }
    let size = b.size();
    let rows = b.f_reshape([size[0], -1])?;
    let first = rows.f_select(1, 0)?;
    let repeated = rows
        .f_eq_tensor(&first.f_unsqueeze(1)?)?
        .f_all()?
        .f_int64_value(&[])?;
    if repeated == 0 {
        bail!(
            "{op}'s bias has shape {size:?}; it must hold one value per output channel (a \
             1-D tensor of {} values)",
            size[0]
        );
    }
    Ok(Some(first.f_contiguous()?))
}

pub struct Conv {
    window: Window,
    group: i64,
}

impl Conv {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Conv {
            window: Window::new(a)?,
            group: a.int("group", 1)?,
        })
    }
}

impl Conv {
    fn convolve(&self, inputs: &[Option<Tensor>], x: &Tensor, padding: Vec<i64>) -> Result<Tensor> {
        let n = padding.len();
        let w = input(inputs, 1, "W")?;
        let (stride, dilation) = (self.window.strides(n), self.window.dilations(n));
        if prefers_onednn(x, w, self.group) {
            return Ok(x.f_mkldnn_convolution(
                w,
                bias(inputs, "Conv")?.as_ref(),
                padding,
                stride,
                dilation,
                self.group,
            )?);
        }
        Ok(x.f_convolution(
            w,
            bias(inputs, "Conv")?.as_ref(),
            stride,
            padding,
            dilation,
            false,
            vec![0; n],
            self.group,
        )?)
    }
}

/// Whether to call oneDNN's convolution where libtorch would not: libtorch sends a 3D
/// convolution of one example with at most 20480 rows (`N*C*D*H`), no groups and a kernel of
/// at most 3 to its native im2col kernel, which is 3-8x slower on the boxes incremental
/// evaluation computes (torch 2.13, 2 threads: 8 to 8 channels on 34^3, 8.2 ms against 1.2
/// ms; 48 to 16 on 20^3, 10.2 against 1.2). Elsewhere libtorch's own choice stands: calling
/// oneDNN directly made a tiny UNet's padded batch-of-4 pass slower (11.3 against 9.0 ms), 2D
/// convolutions ran no faster, and 1x1x1 kernels ran faster natively (0.1 against 0.4 ms).
fn prefers_onednn(x: &Tensor, w: &Tensor, group: i64) -> bool {
    let (size, kernel) = (x.size(), w.size());
    x.dim() == 5
        && w.dim() == 5
        && size[0] == 1
        && group == 1
        && size[..4].iter().product::<i64>() <= 20480
        && kernel[2..].iter().any(|&k| k > 1)
        && !(kernel[3] > 3 && kernel[4] > 3)
        && x.device() == tch::Device::Cpu
        && x.kind() == tch::Kind::Float
        && w.kind() == tch::Kind::Float
        && tch::utils::has_mkldnn()
}

impl NodeOp for Conv {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let w = input(inputs, 1, "W")?;
        let size = spatial(x, "Conv")?;
        let kernel = w.size()[2..].to_vec();
        let n = size.len();
        let (begins, ends) = self.window.pads(&size, &kernel)?;
        let (x, padding) = if begins == ends {
            (x.shallow_clone(), begins)
        } else {
            (x.f_constant_pad_nd(torch_pad(&begins, &ends))?, vec![0; n])
        };
        Ok(vec![self.convolve(inputs, &x, padding)?])
    }

    fn locality(&self, inputs: &[Option<Tensor>]) -> Result<Locality> {
        let size = spatial(input(inputs, 0, "X")?, "Conv")?;
        let kernel = input(inputs, 1, "W")?.size()[2..].to_vec();
        Ok(Locality::Window(self.window.sliding(&size, &kernel, 0.0)?))
    }

    fn run_valid(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let n = spatial(x, "Conv")?.len();
        Ok(vec![self.convolve(inputs, x, vec![0; n])?])
    }
}

pub struct ConvTranspose {
    window: Window,
    group: i64,
    output_padding: Option<Vec<i64>>,
    output_shape: Option<Vec<i64>>,
}

impl ConvTranspose {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(ConvTranspose {
            window: Window::new(a)?,
            group: a.int("group", 1)?,
            output_padding: a.ints("output_padding")?,
            output_shape: a.ints("output_shape")?,
        })
    }

    /// Begin and end crops of the unpadded transposed convolution.
    fn crops(&self, size: &[i64], full: &[i64]) -> Result<(Vec<i64>, Vec<i64>)> {
        let n = size.len();
        if let Some(shape) = &self.output_shape {
            if shape.len() < n {
                bail!("output_shape {shape:?} names fewer than the input's {n} spatial axes");
            }
            let shape = &shape[shape.len() - n..];
            let mut begins = Vec::new();
            let mut ends = Vec::new();
            for i in 0..n {
                let total = full[i] - shape[i];
                if total < 0 {
                    bail!(
                        "output_shape {shape:?} is larger than the transposed convolution's output"
                    );
                }
                // ONNX: SAME_UPPER puts the larger half at the beginning for ConvTranspose.
                let (b, e) = if self.window.auto_pad == "SAME_LOWER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                };
                begins.push(b);
                ends.push(e);
            }
            return Ok((begins, ends));
        }
        match self.window.auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => {
                let strides = self.window.strides(n);
                let (mut begins, mut ends) = (Vec::new(), Vec::new());
                for i in 0..n {
                    let total = (full[i] - size[i] * strides[i]).max(0);
                    let (b, e) = if self.window.auto_pad == "SAME_UPPER" {
                        (total / 2, total - total / 2)
                    } else {
                        (total - total / 2, total / 2)
                    };
                    begins.push(b);
                    ends.push(e);
                }
                Ok((begins, ends))
            }
            "VALID" => Ok((vec![0; n], vec![0; n])),
            _ => match &self.window.pads {
                None => Ok((vec![0; n], vec![0; n])),
                Some(p) if p.len() == 2 * n => Ok((p[..n].to_vec(), p[n..].to_vec())),
                Some(p) => bail!("`pads` {p:?} does not match the input's {n} spatial axes"),
            },
        }
    }
}

impl ConvTranspose {
    /// Unpadded and uncropped; `output_padding` adds outputs at the end that only the bias
    /// reaches.
    fn full(&self, inputs: &[Option<Tensor>], output_padding: Vec<i64>) -> Result<Tensor> {
        let x = input(inputs, 0, "X")?;
        let n = spatial(x, "ConvTranspose")?.len();
        Ok(x.f_convolution(
            input(inputs, 1, "W")?,
            bias(inputs, "ConvTranspose")?.as_ref(),
            self.window.strides(n),
            vec![0; n],
            self.window.dilations(n),
            true,
            output_padding,
            self.group,
        )?)
    }
}

impl NodeOp for ConvTranspose {
    fn locality(&self, inputs: &[Option<Tensor>]) -> Result<Locality> {
        let size = spatial(input(inputs, 0, "X")?, "ConvTranspose")?;
        let kernel = input(inputs, 1, "W")?.size()[2..].to_vec();
        let n = size.len();
        let (strides, dilations) = (self.window.strides(n), self.window.dilations(n));
        let extent: Vec<i64> = (0..n).map(|i| (kernel[i] - 1) * dilations[i] + 1).collect();
        let output_padding = self.output_padding.clone().unwrap_or(vec![0; n]);
        let full: Vec<i64> = (0..n)
            .map(|i| (size[i] - 1) * strides[i] + extent[i] + output_padding[i])
            .collect();
        let (begins, _) = self.crops(&size, &full)?;
        Ok(Locality::Transposed(SlidingWindow {
            extent,
            stride: strides,
            pad_begin: begins,
            pad_value: 0.0,
        }))
    }

    fn run_valid(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let n = spatial(input(inputs, 0, "X")?, "ConvTranspose")?.len();
        Ok(vec![self.full(inputs, vec![0; n])?])
    }

    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let size = spatial(input(inputs, 0, "X")?, "ConvTranspose")?;
        let n = size.len();
        let output_padding = self.output_padding.clone().unwrap_or(vec![0; n]);
        // Unpadded first, then cropped: ONNX allows begin and end pads to differ.
        let full = self.full(inputs, output_padding)?;
        let full_size = full.size()[2..].to_vec();
        let (begins, ends) = self.crops(&size, &full_size)?;
        let mut y = full;
        for i in 0..n {
            let len = full_size[i] - begins[i] - ends[i];
            if len <= 0 {
                bail!("the pads {begins:?}/{ends:?} leave no output");
            }
            if begins[i] != 0 || ends[i] != 0 {
                y = y.f_narrow(2 + i as i64, begins[i], len)?;
            }
        }
        Ok(vec![y])
    }
}
