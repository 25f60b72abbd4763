//! MaxPool (ceil_mode, dilations, pads), AveragePool (count_include_pad, ceil_mode),
//! GlobalAveragePool and GlobalMaxPool.

use anyhow::{anyhow, bail, Result};
use tch::Tensor;

use super::conv::{torch_pad, Window};
use super::input;
use crate::model::graph::{Locality, NodeOp};
use crate::model::onnx::attrs::Attrs;

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
}

impl MaxPool {
    pub fn new(a: &Attrs, outputs: usize) -> Result<Self> {
        if outputs > 1 {
            bail!("MaxPool's second output (the argmax indices) is not supported");
        }
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

impl NodeOp for MaxPool {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
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

    fn locality(&self, inputs: &[Option<Tensor>]) -> Result<Locality> {
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
