//! Parameter types shared by many methods, so that they read the same everywhere.

use anyhow::{bail, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::context::Context;

/// A value that is either one number for every element or a tensor in a file (npy, NIfTI),
/// as Captum's `baselines` accept a scalar or a tensor.
#[derive(Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum TensorOrScalar {
    /// The same value for every element.
    Scalar(f64),
    /// A file holding a tensor that broadcasts to the input's shape.
    File(String),
}

impl Default for TensorOrScalar {
    fn default() -> Self {
        TensorOrScalar::Scalar(0.0)
    }
}

impl TensorOrScalar {
    /// The value as a tensor of `like`'s shape, kind and device. `name` is the parameter's
    /// name, for errors.
    pub fn resolve(&self, ctx: &Context<'_>, name: &str, like: &Tensor) -> Result<Tensor> {
        match self {
            TensorOrScalar::Scalar(v) => Ok(like.full_like(*v)),
            TensorOrScalar::File(path) => {
                let t = ctx
                    .load_tensor(path)?
                    .to_kind(like.kind())
                    .to_device(like.device());
                broadcast_to(&t, like, &format!("`{name}` ({path})"))
            }
        }
    }
}

/// `t` expanded to `like`'s shape, or an error naming `what` and both shapes.
pub fn broadcast_to(t: &Tensor, like: &Tensor, what: &str) -> Result<Tensor> {
    match t.f_expand(like.size(), false) {
        Ok(e) => Ok(e.contiguous()),
        Err(_) => bail!(
            "{what} has shape {:?}, which does not broadcast to the input's shape {:?}",
            t.size(),
            like.size()
        ),
    }
}
