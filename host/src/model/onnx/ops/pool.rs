//! MaxPool (ceil_mode, dilations, pads), AveragePool (count_include_pad, ceil_mode),
//! GlobalAveragePool and GlobalMaxPool.

use anyhow::{anyhow, bail, Result};
use tch::Tensor;

use super::conv::{torch_pad, Window};
use super::input;
use crate::model::graph::NodeOp;
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
        let (k, s, d) = (
            &self.kernel,
            self.window.strides(n),
            self.window.dilations(n),
        );
        let y = match n {
            1 => x.f_max_pool1d(k, s, padding, d, self.ceil_mode)?,
            2 => x.f_max_pool2d(k, s, padding, d, self.ceil_mode)?,
            _ => x.f_max_pool3d(k, s, padding, d, self.ceil_mode)?,
        };
        Ok(vec![y])
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
