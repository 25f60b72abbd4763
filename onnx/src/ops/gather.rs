//! GatherElements, GatherND, ScatterElements and ScatterND.
//!
//! Every form runs as a gather or scatter along the first axis of a flattened tensor
//! (index_select, index_copy, index_add, scatter_reduce), with the target positions computed
//! from the ONNX indices: one code path per op, and libtorch's autograd gives both the data's
//! and the updates' gradients. Negative indices count from the end of their axis, as ONNX
//! allows; indices out of range fail in libtorch with its own message.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::{axis, input};
use crate::attrs::Attrs;
use crate::graph_model::NodeOp;

/// Indices as int64 on `device`, negative ones moved into `[0, len)` of their axis (`lens`
/// broadcasts against them).
fn wrap(indices: &Tensor, lens: &Tensor, device: Device) -> Result<Tensor> {
    let i = indices.f_to_kind(Kind::Int64)?.f_to_device(device)?;
    let lens = lens.f_to_device(device)?;
    Ok(i.f_where_self(&i.f_ge(0)?, &i.f_add(&lens)?)?)
}

/// Row-major strides of `dims`.
fn strides(dims: &[i64]) -> Vec<i64> {
    let mut s = vec![1; dims.len()];
    for j in (0..dims.len().saturating_sub(1)).rev() {
        s[j] = s[j + 1] * dims[j + 1];
    }
    s
}

/// The `reduction` of the scatters, as the index op that performs it.
#[derive(Clone, Copy)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    fn new(a: &Attrs) -> Result<Self> {
        let r = a.choice("reduction", "none", &["none", "add", "mul", "max", "min"])?;
        Ok(match r.as_str() {
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            _ => Reduction::None,
        })
    }

    /// Writes the rows `source` into `data` at `index` along axis 0.
    fn apply(self, data: &Tensor, index: &Tensor, source: &Tensor) -> Result<Tensor> {
        let source = source.f_to_kind(data.kind())?;
        let reduce = match self {
            Reduction::None => return Ok(data.f_index_copy(0, index, &source)?),
            Reduction::Add => return Ok(data.f_index_add(0, index, &source)?),
            Reduction::Mul => "prod",
            Reduction::Max => "amax",
            Reduction::Min => "amin",
        };
        // scatter_reduce (not index_reduce, which libtorch warns is in beta) wants an index
        // per element: each row's number repeated along the row.
        let mut view = vec![1i64; source.dim()];
        view[0] = -1;
        let index = index.f_reshape(&view)?.f_expand(source.size(), false)?;
        Ok(data.f_internal_scatter_reduce(0, &index, &source, reduce, true)?)
    }
}

/// The linear position in `data` (shape `dims`) of every element of an `indices`-shaped
/// tensor whose coordinate along `ax` is replaced by its index value.
fn element_positions(dims: &[i64], ax: usize, indices: &Tensor) -> Result<Tensor> {
    let shape = indices.size();
    let device = indices.device();
    let s = strides(dims);
    let mut pos = indices.f_mul_scalar(s[ax])?;
    for (j, (&n, &stride)) in shape.iter().zip(&s).enumerate() {
        if j == ax {
            continue;
        }
        let mut view = vec![1i64; shape.len()];
        view[j] = n;
        let coord = Tensor::f_arange(n, (Kind::Int64, device))?.f_reshape(&view)?;
        pos = pos.f_add(&coord.f_mul_scalar(stride)?)?;
    }
    Ok(pos)
}

fn check_elements(op: &str, data: &Tensor, indices: &Tensor, ax: usize) -> Result<()> {
    let (d, i) = (data.size(), indices.size());
    if d.len() != i.len()
        || d.iter()
            .zip(&i)
            .enumerate()
            .any(|(j, (a, b))| j != ax && b > a)
    {
        bail!(
            "{op}'s indices of shape {i:?} do not fit its data of shape {d:?}: both need the \
             same rank, and the indices may not be longer on any axis but `axis` ({ax})"
        );
    }
    Ok(())
}

pub struct GatherElements {
    axis: i64,
}

impl GatherElements {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(GatherElements {
            axis: a.int("axis", 0)?,
        })
    }
}

impl NodeOp for GatherElements {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let data = input(inputs, 0, "data")?;
        let indices = input(inputs, 1, "indices")?;
        let ax = axis(self.axis, data.dim() as i64)? as usize;
        check_elements("GatherElements", data, indices, ax)?;
        let len = Tensor::from(data.size()[ax]);
        let index = wrap(indices, &len, data.device())?;
        Ok(vec![data.f_gather(ax as i64, &index, false)?])
    }
}

pub struct ScatterElements {
    axis: i64,
    reduction: Reduction,
}

impl ScatterElements {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(ScatterElements {
            axis: a.int("axis", 0)?,
            reduction: Reduction::new(a)?,
        })
    }
}

impl NodeOp for ScatterElements {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let data = input(inputs, 0, "data")?;
        let indices = input(inputs, 1, "indices")?;
        let updates = input(inputs, 2, "updates")?;
        let dims = data.size();
        let ax = axis(self.axis, dims.len() as i64)? as usize;
        check_elements("ScatterElements", data, indices, ax)?;
        if updates.size() != indices.size() {
            bail!(
                "ScatterElements' updates of shape {:?} differ from its indices' shape {:?}",
                updates.size(),
                indices.size()
            );
        }
        let index = wrap(indices, &Tensor::from(dims[ax]), data.device())?;
        let positions = element_positions(&dims, ax, &index)?.f_reshape([-1])?;
        let flat = data.f_reshape([-1])?;
        let y = self
            .reduction
            .apply(&flat, &positions, &updates.f_reshape([-1])?)?;
        Ok(vec![y.f_reshape(&dims)?])
    }
}

/// The rows of `data` (shape `dims` followed by more axes) that index vectors of length
/// `dims.len()` point to, as linear row numbers, with the same leading shape as `indices`.
fn row_numbers(dims: &[i64], indices: &Tensor, device: Device) -> Result<Tensor> {
    let lens = Tensor::from_slice(dims);
    let index = wrap(indices, &lens, device)?;
    let s = Tensor::from_slice(&strides(dims)).f_to_device(device)?;
    Ok(index
        .f_mul(&s)?
        .f_sum_dim_intlist(Some([-1i64].as_slice()), false, None)?)
}

/// The length of the index vectors (the indices' last axis), checked against the data's rank.
fn index_depth(op: &str, indices: &Tensor, data_rank: usize, batch: usize) -> Result<usize> {
    let shape = indices.size();
    let Some(&k) = shape.last() else {
        bail!("{op}'s indices must have rank 1 or more, got a scalar");
    };
    if k < 1 || k as usize > data_rank - batch {
        bail!(
            "{op}'s index vectors have length {k} (the indices' last axis, shape {shape:?}); \
             they must have between 1 and {} entries for data of rank {data_rank}{}",
            data_rank - batch,
            if batch > 0 {
                format!(" with batch_dims={batch}")
            } else {
                String::new()
            }
        );
    }
    Ok(k as usize)
}

pub struct GatherND {
    batch_dims: usize,
}

impl GatherND {
    pub fn new(a: &Attrs) -> Result<Self> {
        let b = a.int("batch_dims", 0)?;
        if b < 0 {
            bail!("GatherND's batch_dims must be 0 or more, got {b}");
        }
        Ok(GatherND {
            batch_dims: b as usize,
        })
    }
}

impl NodeOp for GatherND {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let data = input(inputs, 0, "data")?;
        let indices = input(inputs, 1, "indices")?;
        let (d, i) = (data.size(), indices.size());
        let b = self.batch_dims;
        if b >= d.len() || b >= i.len() || d[..b] != i[..b] {
            bail!(
                "GatherND with batch_dims={b} needs data (shape {d:?}) and indices (shape \
                 {i:?}) that share their first {b} axes, with at least one more each"
            );
        }
        let k = index_depth("GatherND", indices, d.len(), b)?;
        let batch: i64 = d[..b].iter().product();
        let block: i64 = d[b..b + k].iter().product();
        let rest = &d[b + k..];
        let device = data.device();
        // Each batch element's rows follow the previous one's: offset them by a block each.
        let rows = row_numbers(&d[b..b + k], indices, device)?.f_reshape([batch, -1])?;
        let offsets = Tensor::f_arange(batch, (Kind::Int64, device))?
            .f_mul_scalar(block)?
            .f_reshape([batch, 1])?;
        let rows = rows.f_add(&offsets)?.f_reshape([-1])?;
        let flat_shape: Vec<i64> = [batch * block].iter().chain(rest).copied().collect();
        let picked = data.f_reshape(&flat_shape)?.f_index_select(0, &rows)?;
        let out: Vec<i64> = i[..i.len() - 1].iter().chain(rest).copied().collect();
        Ok(vec![picked.f_reshape(&out)?])
    }
}

pub struct ScatterND {
    reduction: Reduction,
}

impl ScatterND {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(ScatterND {
            reduction: Reduction::new(a)?,
        })
    }
}

impl NodeOp for ScatterND {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let data = input(inputs, 0, "data")?;
        let indices = input(inputs, 1, "indices")?;
        let updates = input(inputs, 2, "updates")?;
        let d = data.size();
        let k = index_depth("ScatterND", indices, d.len(), 0)?;
        let i = indices.size();
        let expected: Vec<i64> = i[..i.len() - 1].iter().chain(&d[k..]).copied().collect();
        if updates.size() != expected {
            bail!(
                "ScatterND's updates have shape {:?}; for indices of shape {i:?} into data of \
                 shape {d:?} they must have shape {expected:?}",
                updates.size()
            );
        }
        let rows = row_numbers(&d[..k], indices, data.device())?.f_reshape([-1])?;
        let rest = &d[k..];
        let flat: Vec<i64> = [-1].iter().chain(rest).copied().collect();
        let y = self
            .reduction
            .apply(&data.f_reshape(&flat)?, &rows, &updates.f_reshape(&flat)?)?;
        Ok(vec![y.f_reshape(&d)?])
    }
}
