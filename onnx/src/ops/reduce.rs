//! ReduceMean/Sum/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp (axes as attribute or, in
//! newer opsets, as input; keepdims; noop_with_empty_axes), ArgMax, and CumSum (a running
//! sum along one axis: exclusive, reverse).

use anyhow::{bail, Result};
use tch::Tensor;

use super::{axes_from, axis, input, ints};
use crate::attrs::Attrs;
use crate::graph_model::NodeOp;

pub struct Reduce {
    kind: String,
    axes: Option<Vec<i64>>,
    keepdims: bool,
    noop_with_empty_axes: bool,
}

impl Reduce {
    pub fn new(kind: &str, a: &Attrs) -> Result<Self> {
        Ok(Reduce {
            kind: kind.to_string(),
            axes: a.ints("axes")?,
            keepdims: a.int("keepdims", 1)? != 0,
            noop_with_empty_axes: a.int("noop_with_empty_axes", 0)? != 0,
        })
    }

    fn reduce(&self, x: &Tensor, axes: &[i64]) -> Result<Tensor> {
        let k = self.keepdims;
        Ok(match self.kind.as_str() {
            "ReduceMean" => x.f_mean_dim(Some(axes), k, None)?,
            "ReduceSum" => x.f_sum_dim_intlist(Some(axes), k, None)?,
            "ReduceMax" => x.f_amax(axes, k)?,
            "ReduceMin" => x.f_amin(axes, k)?,
            "ReduceL1" => x.f_abs()?.f_sum_dim_intlist(Some(axes), k, None)?,
            "ReduceL2" => x
                .f_square()?
                .f_sum_dim_intlist(Some(axes), k, None)?
                .f_sqrt()?,
            "ReduceSumSquare" => x.f_square()?.f_sum_dim_intlist(Some(axes), k, None)?,
            // PyTorch's logsumexp subtracts the maximum first, so large inputs do not overflow.
            "ReduceLogSumExp" => x.f_logsumexp(axes, k)?,
            "ReduceLogSum" => x.f_sum_dim_intlist(Some(axes), k, None)?.f_log()?,
            _ => {
                // ReduceProd: one axis at a time, from the last so indices stay valid.
                let mut sorted = axes.to_vec();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                let mut y = x.shallow_clone();
                for a in sorted {
                    y = y.f_prod_dim_int(a, k, None)?;
                }
                y
            }
        })
    }
}

impl NodeOp for Reduce {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let rank = x.dim() as i64;
        let axes = axes_from(&self.axes, inputs, 1)?.unwrap_or_default();
        if axes.is_empty() && self.noop_with_empty_axes {
            return Ok(vec![x.shallow_clone()]);
        }
        let axes: Vec<i64> = if axes.is_empty() {
            (0..rank).collect()
        } else {
            axes.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?
        };
        Ok(vec![self.reduce(x, &axes)?])
    }
}

pub struct ArgMax {
    axis: i64,
    keepdims: bool,
    last: bool,
}

impl ArgMax {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(ArgMax {
            axis: a.int("axis", 0)?,
            keepdims: a.int("keepdims", 1)? != 0,
            last: a.int("select_last_index", 0)? != 0,
        })
    }
}

impl NodeOp for ArgMax {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "data")?;
        let ax = axis(self.axis, x.dim() as i64)?;
        if !self.last {
            return Ok(vec![x.f_argmax(ax, self.keepdims)?]);
        }
        // The last of equal maxima: the first one of the reversed axis, mirrored back.
        let n = x.size()[ax as usize];
        let flipped = x.f_flip([ax])?.f_argmax(ax, self.keepdims)?;
        Ok(vec![(flipped.f_neg()? + (n - 1))])
    }
}

pub struct CumSum {
    exclusive: bool,
    reverse: bool,
}

impl CumSum {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(CumSum {
            exclusive: a.int("exclusive", 0)? != 0,
            reverse: a.int("reverse", 0)? != 0,
        })
    }
}

impl NodeOp for CumSum {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "x")?;
        let given = ints(input(inputs, 1, "axis")?)?;
        let [a] = given.as_slice() else {
            bail!(
                "CumSum's axis must hold one integer, got {} values",
                given.len()
            );
        };
        let ax = axis(*a, x.dim() as i64)?;
        let x = if self.reverse {
            x.f_flip([ax])?
        } else {
            x.shallow_clone()
        };
        let mut y = x.f_cumsum(ax, None::<tch::Kind>)?;
        let len = x.size()[ax as usize];
        if self.exclusive && len > 0 {
            // Each position sums what comes before it only: the running sum shifted by one,
            // not minus the element (which would round differently from ONNX's definition).
            let first = y.f_narrow(ax, 0, 1)?.f_zeros_like()?;
            y = Tensor::f_cat(&[first, y.f_narrow(ax, 0, len - 1)?], ax)?;
        }
        Ok(vec![if self.reverse { y.f_flip([ax])? } else { y }])
    }
}
