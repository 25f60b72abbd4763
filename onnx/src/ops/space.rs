//! DepthToSpace (both DCR and CRD orders) and SpaceToDepth: moving blocks of channels to
//! blocks of pixels and back, by a reshape, a transpose and a reshape.
//!
//! CRD is PyTorch's `pixel_shuffle`; DCR (the default) takes the block offsets from the
//! outer channel bits instead.

use anyhow::{bail, Result};
use tch::Tensor;

use super::input;
use crate::attrs::Attrs;
use crate::graph_model::NodeOp;

fn blocksize(a: &Attrs, op: &str) -> Result<i64> {
    if !a.has("blocksize") {
        bail!("{op} needs the attribute `blocksize`");
    }
    let b = a.int("blocksize", 0)?;
    if b < 1 {
        bail!("{op}'s blocksize must be positive, got {b}");
    }
    Ok(b)
}

fn nchw(x: &Tensor, op: &str) -> Result<[i64; 4]> {
    match x.size().as_slice() {
        &[n, c, h, w] => Ok([n, c, h, w]),
        s => bail!("{op} expects a [N, C, H, W] input, got shape {s:?}"),
    }
}

pub struct DepthToSpace {
    blocksize: i64,
    /// Column-row-depth order (pixel_shuffle); else depth-column-row.
    crd: bool,
}

impl DepthToSpace {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(DepthToSpace {
            blocksize: blocksize(a, "DepthToSpace")?,
            crd: a.choice("mode", "DCR", &["DCR", "CRD"])? == "CRD",
        })
    }
}

impl NodeOp for DepthToSpace {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let [n, c, h, w] = nchw(x, "DepthToSpace")?;
        let b = self.blocksize;
        if c % (b * b) != 0 {
            bail!(
                "DepthToSpace with blocksize {b} needs channels divisible by {}, got {c}",
                b * b
            );
        }
        let out_c = c / (b * b);
        let y = if self.crd {
            x.f_reshape([n, out_c, b, b, h, w])?
                .f_permute([0, 1, 4, 2, 5, 3])?
        } else {
            x.f_reshape([n, b, b, out_c, h, w])?
                .f_permute([0, 3, 4, 1, 5, 2])?
        };
        Ok(vec![y.f_reshape([n, out_c, h * b, w * b])?])
    }
}

pub struct SpaceToDepth {
    blocksize: i64,
}

impl SpaceToDepth {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(SpaceToDepth {
            blocksize: blocksize(a, "SpaceToDepth")?,
        })
    }
}

impl NodeOp for SpaceToDepth {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let [n, c, h, w] = nchw(x, "SpaceToDepth")?;
        let b = self.blocksize;
        if h % b != 0 || w % b != 0 {
            bail!("SpaceToDepth with blocksize {b} needs a height and width divisible by it, got {h}x{w}");
        }
        let y = x
            .f_reshape([n, c, h / b, b, w / b, b])?
            .f_permute([0, 3, 5, 1, 2, 4])?;
        Ok(vec![y.f_reshape([n, c * b * b, h / b, w / b])?])
    }
}
