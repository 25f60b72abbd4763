//! Ops that pick elements by value or position: TopK, NonZero, OneHot, Hardmax and Trilu.
//!
//! TopK's values and Trilu's kept triangle carry the gradient of what they pick; NonZero,
//! OneHot's positions and Hardmax are piecewise constant, so their outputs carry none
//! (PyTorch's gradient of them is zero too).

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::{axis, input, ints, optional};
use crate::attrs::Attrs;
use crate::graph_model::NodeOp;

/// One integer from a one-element tensor input (K, depth, k).
fn scalar_int(t: &Tensor, op: &str, what: &str) -> Result<i64> {
    match ints(t)?.as_slice() {
        [v] => Ok(*v),
        v => bail!(
            "{op}'s `{what}` must hold one integer, got {} values",
            v.len()
        ),
    }
}

pub struct TopK {
    axis: i64,
    largest: bool,
    /// Before opset 10, k was an attribute.
    k: Option<i64>,
}

impl TopK {
    pub fn new(a: &Attrs, opset: i64) -> Result<Self> {
        // sorted=0 leaves the order unspecified, so the sorted order is a valid answer to it.
        a.int("sorted", 1)?;
        Ok(TopK {
            axis: a.int("axis", -1)?,
            largest: a.int("largest", 1)? != 0,
            k: if opset < 10 {
                Some(a.int("k", 1)?)
            } else {
                None
            },
        })
    }
}

impl NodeOp for TopK {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let k = match self.k {
            Some(k) => k,
            None => scalar_int(input(inputs, 1, "K")?, "TopK", "K")?,
        };
        let ax = axis(self.axis, x.dim() as i64)?;
        let len = x.size()[ax as usize];
        if k < 0 || k > len {
            bail!("TopK asks for the {k} largest or smallest of an axis of length {len}");
        }
        let (values, indices) = x.f_topk(k, ax, self.largest, true)?;
        Ok(vec![values, indices])
    }
}

/// The indices of the non-zero elements, one row per axis (`[rank, count]`), in row-major
/// order.
pub struct NonZero;

impl NodeOp for NonZero {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        if x.dim() == 0 {
            // A scalar has no axes: one column of no rows when it is non-zero.
            let n = i64::from(x.f_ne(0)?.f_int64_value(&[])? != 0);
            return Ok(vec![Tensor::f_zeros([0, n], (Kind::Int64, x.device()))?]);
        }
        Ok(vec![x.f_nonzero()?.f_transpose(0, 1)?.f_contiguous()?])
    }
}

pub struct OneHot {
    axis: i64,
}

impl OneHot {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(OneHot {
            axis: a.int("axis", -1)?,
        })
    }
}

impl NodeOp for OneHot {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let indices = input(inputs, 0, "indices")?;
        let depth = input(inputs, 1, "depth")?;
        let values = input(inputs, 2, "values")?;
        let depth = depth.f_to_kind(Kind::Double)?.f_reshape([-1])?;
        if depth.numel() != 1 {
            bail!("OneHot's depth must hold one value, got {}", depth.numel());
        }
        let depth = depth.f_double_value(&[0])? as i64;
        if depth < 1 {
            bail!("OneHot's depth must be positive, got {depth}");
        }
        if values.numel() != 2 {
            bail!(
                "OneHot's values must hold two elements (off, on), got {}",
                values.numel()
            );
        }
        let rank = indices.dim() as i64 + 1;
        let ax = axis(self.axis, rank)?;
        let device = indices.device();
        // Negative indices count from the end; others out of range match no class.
        let i = indices.f_to_kind(Kind::Int64)?;
        let i = i.f_where_self(&i.f_ge(0)?, &i.f_add_scalar(depth)?)?;
        let mut view = vec![1i64; rank as usize];
        view[ax as usize] = depth;
        let classes = Tensor::f_arange(depth, (Kind::Int64, device))?.f_reshape(&view)?;
        let hot = i.f_unsqueeze(ax)?.f_eq_tensor(&classes)?;
        let values = values.f_reshape([2])?;
        Ok(vec![values
            .f_get(1)?
            .f_where_self(&hot, &values.f_get(0)?)?])
    }
}

pub struct Hardmax {
    axis: i64,
    /// Before opset 13 the input was flattened to 2D at `axis` and the maximum taken over the
    /// rest, as for Softmax.
    flatten: bool,
}

impl Hardmax {
    pub fn new(a: &Attrs, opset: i64) -> Result<Self> {
        let flatten = opset < 13;
        Ok(Hardmax {
            axis: a.int("axis", if flatten { 1 } else { -1 })?,
            flatten,
        })
    }
}

/// 1 at the first maximum along `ax`, 0 elsewhere, in the input's type.
fn first_max(x: &Tensor, ax: i64) -> Result<Tensor> {
    let n = x.size()[ax as usize];
    let at = x.f_argmax(ax, true)?;
    let mut view = vec![1i64; x.dim()];
    view[ax as usize] = n;
    let positions = Tensor::f_arange(n, (Kind::Int64, x.device()))?.f_reshape(&view)?;
    Ok(positions.f_eq_tensor(&at)?.f_to_kind(x.kind())?)
}

impl NodeOp for Hardmax {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let rank = x.dim() as i64;
        if rank == 0 {
            bail!("Hardmax of a scalar");
        }
        let ax = axis(self.axis, rank)?;
        if !self.flatten || ax == rank - 1 {
            return Ok(vec![first_max(x, ax)?]);
        }
        let shape = x.size();
        let outer: i64 = shape[..ax as usize].iter().product();
        let flat = x.f_reshape([outer, -1])?;
        Ok(vec![first_max(&flat, 1)?.f_reshape(&shape)?])
    }
}

pub struct Trilu {
    upper: bool,
}

impl Trilu {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(Trilu {
            upper: a.int("upper", 1)? != 0,
        })
    }
}

impl NodeOp for Trilu {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        if x.dim() < 2 {
            bail!(
                "Trilu needs a tensor of rank 2 or more (its last two axes are the matrix), got \
                 shape {:?}",
                x.size()
            );
        }
        let k = match optional(inputs, 1) {
            Some(t) => scalar_int(t, "Trilu", "k")?,
            None => 0,
        };
        Ok(vec![if self.upper {
            x.f_triu(k)?
        } else {
            x.f_tril(k)?
        }])
    }
}
