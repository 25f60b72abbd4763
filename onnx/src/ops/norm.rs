//! BatchNormalization (inference), InstanceNormalization, GroupNormalization,
//! LayerNormalization and LpNormalization.

use anyhow::{bail, Result};
use tch::Tensor;

use super::{axis, input, optional};
use crate::attrs::Attrs;
use crate::graph_model::{Locality, NodeOp};

pub struct BatchNorm {
    epsilon: f64,
}

impl BatchNorm {
    pub fn new(a: &Attrs, outputs: usize) -> Result<Self> {
        if a.int("training_mode", 0)? != 0 || outputs > 1 {
            bail!(
                "BatchNormalization in training mode is not supported; export the model after \
                 model.eval()"
            );
        }
        Ok(BatchNorm {
            epsilon: a.float("epsilon", 1e-5)? as f64,
        })
    }
}

impl NodeOp for BatchNorm {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let scale = input(inputs, 1, "scale")?;
        let bias = input(inputs, 2, "B")?;
        let mean = input(inputs, 3, "input_mean")?;
        let var = input(inputs, 4, "input_var")?;
        Ok(vec![x.f_batch_norm(
            Some(scale),
            Some(bias),
            Some(mean),
            Some(var),
            false,
            0.0,
            self.epsilon,
            false,
        )?])
    }

    fn locality(&self, _inputs: &[Option<Tensor>]) -> Result<Locality> {
        Ok(Locality::Channelwise)
    }
}

pub struct InstanceNorm {
    epsilon: f64,
}

impl InstanceNorm {
    pub fn new(a: &Attrs) -> Result<Self> {
        Ok(InstanceNorm {
            epsilon: a.float("epsilon", 1e-5)? as f64,
        })
    }
}

impl NodeOp for InstanceNorm {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let scale = input(inputs, 1, "scale")?;
        let bias = input(inputs, 2, "B")?;
        Ok(vec![x.f_instance_norm(
            Some(scale),
            Some(bias),
            None::<&Tensor>,
            None,
            true,
            0.0,
            self.epsilon,
            false,
        )?])
    }
}

pub struct GroupNorm {
    groups: i64,
    epsilon: f64,
}

impl GroupNorm {
    pub fn new(a: &Attrs) -> Result<Self> {
        let groups = a.int("num_groups", 0)?;
        if groups < 1 {
            bail!("GroupNormalization needs a positive `num_groups`");
        }
        Ok(GroupNorm {
            groups,
            epsilon: a.float("epsilon", 1e-5)? as f64,
        })
    }
}

impl NodeOp for GroupNorm {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let channels = x.size().get(1).copied().unwrap_or(0);
        let per_channel = |t: &Tensor| -> Result<Tensor> {
            let t = t.f_reshape([-1])?;
            // Opset 18 gives one scale per group, opset 21 one per channel.
            if t.size()[0] == self.groups && channels != self.groups {
                Ok(t.f_repeat_interleave_self_int(channels / self.groups, 0, None)?)
            } else {
                Ok(t)
            }
        };
        let scale = per_channel(input(inputs, 1, "scale")?)?;
        let bias = per_channel(input(inputs, 2, "bias")?)?;
        Ok(vec![x.f_group_norm(
            self.groups,
            Some(&scale),
            Some(&bias),
            self.epsilon,
            false,
        )?])
    }
}

pub struct LayerNorm {
    axis: i64,
    epsilon: f64,
}

impl LayerNorm {
    pub fn new(a: &Attrs, outputs: usize) -> Result<Self> {
        if outputs > 1 {
            bail!("LayerNormalization's Mean and InvStdDev outputs are not supported");
        }
        Ok(LayerNorm {
            axis: a.int("axis", -1)?,
            epsilon: a.float("epsilon", 1e-5)? as f64,
        })
    }
}

impl NodeOp for LayerNorm {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "X")?;
        let size = x.size();
        let ax = axis(self.axis, size.len() as i64)? as usize;
        let normalized = &size[ax..];
        let scale = input(inputs, 1, "Scale")?.f_expand(normalized, false)?;
        let bias = optional(inputs, 2)
            .map(|b| b.f_expand(normalized, false))
            .transpose()?;
        Ok(vec![x.f_layer_norm(
            normalized,
            Some(&scale),
            bias.as_ref(),
            self.epsilon,
            false,
        )?])
    }
}

/// x divided by its L1 or L2 norm along one axis (ONNX adds no epsilon, unlike
/// `F.normalize`: a zero vector gives NaN, as it does in ONNX).
pub struct LpNorm {
    axis: i64,
    p: i64,
}

impl LpNorm {
    pub fn new(a: &Attrs) -> Result<Self> {
        let p = a.int("p", 2)?;
        if p != 1 && p != 2 {
            bail!("LpNormalization's p must be 1 or 2 (the ONNX spec's only values), got {p}");
        }
        Ok(LpNorm {
            axis: a.int("axis", -1)?,
            p,
        })
    }
}

impl NodeOp for LpNorm {
    fn run(&self, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "input")?;
        let ax = axis(self.axis, x.dim() as i64)?;
        let norm = x.f_norm_scalaropt_dim(self.p, [ax], true)?;
        Ok(vec![x.f_div(&norm)?])
    }
}
