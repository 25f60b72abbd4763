//! MaxPool (ceil_mode, dilations, pads, and the argmax indices output), AveragePool
//! (count_include_pad, ceil_mode), GlobalAveragePool and GlobalMaxPool.

use anyhow::{anyhow, bail, Result};
use tch::{Kind, Tensor};

use super::conv::{torch_pad, Window};
use super::input;
use crate::attrs::Attrs;
use crate::graph_model::{Locality, NodeOp};

fn spatial(x: &Tensor, op: &str, kernel: &[i64]) -> Result<Vec<i64>> {
    let size = x.size();
    if !(3..=5).contains(&size.len()) || size.len() - 2 != kernel.len() {
        bail!(
            "{op} with kernel {kernel:?} expects a [N, C, ...] input with {} spatial axes, got \
             shape {size:?}",
            kernel.len()
        );
    }
    Ok(size[2..].to_vec())
}

/// torch pools take symmetric pads of at most half the kernel; others are applied first.
fn native(begins: &[i64], ends: &[i64], kernel: &[i64]) -> bool {
    begins == ends && begins.iter().zip(kernel).all(|(&p, &k)| p <= k / 2)
}

pub struct MaxPool {
    window: Window,
    kernel: Vec<i64>,
    ceil_mode: bool,
    /// Whether the node asks for the second output, the argmax indices.
    indices: bool,
}

impl MaxPool {
    pub fn new(a: &Attrs, outputs: usize) -> Result<Self> {
        let window = Window::new(a)?;
        let kernel = window
            .kernel
            .clone()
            .ok_or_else(|| anyhow!("MaxPool needs the attribute `kernel_shape`"))?;
        if a.int("storage_order", 0)? != 0 {
            bail!("MaxPool's storage_order=1 (column-major indices) is not supported");
        }
        Ok(MaxPool {
            window,
            kernel,
            ceil_mode: a.int("ceil_mode", 0)? != 0,
            indices: outputs > 1,
        })
    }
}

impl MaxPool {
    fn pool(&self, x: &Tensor, padding: Vec<i64>, ceil_mode: bool) -> Result<Tensor> {
        let n = padding.len();
        let (k, s, d) = (
            &self.kernel,
            self.window.strides(n),
            self.window.dilations(n),
        );
        Ok(match n {
            1 => x.f_max_pool1d(k, s, padding, d, ceil_mode)?,
            2 => x.f_max_pool2d(k, s, padding, d, ceil_mode)?,
            _ => x.f_max_pool3d(k, s, padding, d, ceil_mode)?,
        })
    }
}

impl MaxPool {
    fn pool_with_indices(&self, x: &Tensor, padding: Vec<i64>) -> Result<(Tensor, Tensor)> {
        let n = padding.len();
        let (k, s, d) = (
            &self.kernel,
            self.window.strides(n),
            self.window.dilations(n),
        );
        let c = self.ceil_mode;
        Ok(match n {
            1 => x.f_max_pool1d_with_indices(k, s, padding, d, c)?,
            2 => x.f_max_pool2d_with_indices(k, s, padding, d, c)?,
            _ => x.f_max_pool3d_with_indices(k, s, padding, d, c)?,
        })
    }
}

/// ONNX's MaxPool indices from libtorch's: libtorch counts within each (n, c) plane of the
/// tensor it pooled (here padded by `begins` when the pads were applied first); ONNX counts
/// over the whole unpadded input, row-major, so the batch and channel move the index too.
fn onnx_indices(torch: &Tensor, size: &[i64], pooled: &[i64], begins: &[i64]) -> Result<Tensor> {
    let spatial = &size[2..];
    let mut rest = torch.shallow_clone();
    let mut index = torch.f_zeros_like()?;
    let mut scale = 1;
    // Unravel over the pooled plane from the last axis, ravel over the unpadded one.
    for j in (0..spatial.len()).rev() {
        let coord = rest.f_remainder(pooled[j])?.f_sub_scalar(begins[j])?;
        rest = rest.f_div_tensor_mode(&Tensor::from(pooled[j]), "floor")?;
        index = index.f_add(&coord.f_mul_scalar(scale)?)?;
        scale *= spatial[j];
    }
    let (n, c) = (size[0], size[1]);
    let mut view = vec![1i64; size.len()];
    view[0] = n;
    view[1] = c;
    let plane = Tensor::f_arange(n * c, (Kind::Int64, torch.device()))?
        .f_mul_scalar(scale)?
        .f_reshape(&view)?;
    Ok(index.f_add(&plane)?)
}

impl NodeOp for MaxPool {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        if self.indices {
            return self.run_with_indices(inputs);
        }
        let x = input(inputs, 0, "X")?;
        let size = spatial(x, "MaxPool", &self.kernel)?;
        let n = size.len();
        let (begins, ends) = self.window.pads(&size, &self.kernel)?;
        let (x, padding) = if native(&begins, &ends, &self.kernel) {
            (x.shallow_clone(), begins)
        } else {
            let padded = x.f_pad(torch_pad(&begins, &ends), "constant", f64::NEG_INFINITY)?;
            (padded, vec![0; n])
        };
        Ok(vec![self.pool(&x, padding, self.ceil_mode)?])
    }

    /// The indices output names absolute positions, which a window of the input would move.
    fn locality(&self, inputs: &[Option<Tensor>]) -> Result<Locality> {
        if self.indices {
            return Ok(Locality::Global);
        }
        let size = spatial(input(inputs, 0, "X")?, "MaxPool", &self.kernel)?;
        let window = self
            .window
            .sliding(&size, &self.kernel, f64::NEG_INFINITY)?;
        Ok(Locality::Window(window))
    }

    /// On an exact window the last output needs no ceil_mode: the window ends where it does.
    fn run_valid(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let n = spatial(x, "MaxPool", &self.kernel)?.len();
        Ok(vec![self.pool(x, vec![0; n], false)?])
    }
}

impl MaxPool {
    fn run_with_indices(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let size = spatial(x, "MaxPool", &self.kernel)?;
        let n = size.len();
        let (begins, ends) = self.window.pads(&size, &self.kernel)?;
        let (values, torch) = if native(&begins, &ends, &self.kernel) {
            let (v, i) = self.pool_with_indices(x, begins)?;
            (v, onnx_indices(&i, &x.size(), &size, &vec![0; n])?)
        } else {
            let padded = x.f_pad(torch_pad(&begins, &ends), "constant", f64::NEG_INFINITY)?;
            let (v, i) = self.pool_with_indices(&padded, vec![0; n])?;
            let pooled = padded.size()[2..].to_vec();
            (v, onnx_indices(&i, &x.size(), &pooled, &begins)?)
        };
        Ok(vec![values, torch])
    }
}

pub struct AveragePool {
    window: Window,
    kernel: Vec<i64>,
    ceil_mode: bool,
    count_include_pad: bool,
}

impl AveragePool {
    pub fn new(a: &Attrs) -> Result<Self> {
        let window = Window::new(a)?;
        let kernel = window
            .kernel
            .clone()
            .ok_or_else(|| anyhow!("AveragePool needs the attribute `kernel_shape`"))?;
        if window.dilations.iter().flatten().any(|&d| d != 1) {
            bail!("AveragePool with dilations other than 1 is not supported");
        }
        Ok(AveragePool {
            window,
            kernel,
            ceil_mode: a.int("ceil_mode", 0)? != 0,
            count_include_pad: a.int("count_include_pad", 0)? != 0,
        })
    }

    fn pool(&self, x: &Tensor, padding: &[i64], include_pad: bool) -> Result<Tensor> {
        let n = self.kernel.len();
        let (k, s) = (&self.kernel, self.window.strides(n));
        Ok(match n {
            1 => x.f_avg_pool1d(k, s, padding, self.ceil_mode, include_pad)?,
            2 => x.f_avg_pool2d(k, s, padding, self.ceil_mode, include_pad, None)?,
            _ => x.f_avg_pool3d(k, s, padding, self.ceil_mode, include_pad, None)?,
        })
    }
}

impl NodeOp for AveragePool {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let size = spatial(x, "AveragePool", &self.kernel)?;
        let n = size.len();
        let (begins, ends) = self.window.pads(&size, &self.kernel)?;
        if native(&begins, &ends, &self.kernel) {
            return Ok(vec![self.pool(x, &begins, self.count_include_pad)?]);
        }
        let pad = torch_pad(&begins, &ends);
        let zeros = vec![0; n];
        let sums = self.pool(&x.f_constant_pad_nd(&pad)?, &zeros, true)?;
        if self.count_include_pad {
            return Ok(vec![sums]);
        }
        // Mean over real elements only: divide by the share of the window inside the input.
        let ones = x.f_ones_like()?.f_constant_pad_nd(&pad)?;
        let share = self.pool(&ones, &zeros, true)?;
        Ok(vec![sums.f_div(&share)?])
    }

    /// Local when every window divides by the kernel size: with count_include_pad, or with no
    /// padding; ceil_mode's partial last windows divide by less, so they stay global.
    fn locality(&self, inputs: &[Option<Tensor>]) -> Result<Locality> {
        let size = spatial(input(inputs, 0, "X")?, "AveragePool", &self.kernel)?;
        let (begins, ends) = self.window.pads(&size, &self.kernel)?;
        let unpadded = begins.iter().chain(&ends).all(|&p| p == 0);
        if self.ceil_mode || !(self.count_include_pad || unpadded) {
            return Ok(Locality::Global);
        }
        Ok(Locality::Window(self.window.sliding(
            &size,
            &self.kernel,
            0.0,
        )?))
    }

    fn run_valid(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let n = spatial(x, "AveragePool", &self.kernel)?.len();
        Ok(vec![self.pool(x, &vec![0; n], true)?])
    }
}

/// Mean or max over every spatial axis, kept as size-1 axes.
pub struct GlobalPool {
    pub max: bool,
}

impl NodeOp for GlobalPool {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let axes: Vec<i64> = (2..x.dim() as i64).collect();
        if axes.is_empty() {
            bail!(
                "a global pool expects a [N, C, ...] input, got shape {:?}",
                x.size()
            );
        }
        Ok(vec![if self.max {
            x.f_amax(&axes, true)?
        } else {
            x.f_mean_dim(Some(axes.as_slice()), true, None)?
        }])
    }
}
