//! DeepLift's rescale rule (Shrikumar et al., 2017) on an elementwise nonlinearity (ReLU, ELU,
//! sigmoid, tanh, ...). The batch is `[inputs; references]`; the multiplier is
//! `Δy / Δx` with the differences taken against each example's reference, falling back to the
//! gradient where `|Δx| < eps`, as Captum does.

use anyhow::Result;
use tch::Tensor;

use super::{Recorded, Rule};
use crate::model::graph::NodeView;

pub struct Rescale {
    pub eps: f64,
}

impl Rule for Rescale {
    fn backward(
        &self,
        _node: &NodeView<'_>,
        recorded: &Recorded,
        grad_outputs: &[Option<Tensor>],
    ) -> Result<Vec<Option<Tensor>>> {
        let mut grads = recorded.vjp(grad_outputs)?;
        let (Some(Some(plain)), Some(Some(g))) = (grads.first(), grad_outputs.first()) else {
            return Ok(grads);
        };
        let (delta_in, delta_out) = paired_deltas(recorded.input()?, &recorded.outputs[0])?;
        grads[0] = Some(multipliers(&delta_in, &(g * &delta_out), plain, self.eps));
        Ok(grads)
    }
}

/// `x - x_ref` and `y - y_ref` for a `[inputs; references]` batch, repeated over both halves.
pub fn paired_deltas(input: &Tensor, output: &Tensor) -> Result<(Tensor, Tensor)> {
    let delta = |t: &Tensor| -> Result<Tensor> {
        let (a, b) = halves(t)?;
        let d = (a - b).detach();
        Ok(Tensor::cat(&[&d, &d], 0))
    };
    Ok((delta(input)?, delta(output)?))
}

/// The inputs' and the references' halves of a paired batch.
pub fn halves(t: &Tensor) -> Result<(Tensor, Tensor)> {
    let parts = t.f_chunk(2, 0)?;
    anyhow::ensure!(
        parts.len() == 2 && parts[0].size() == parts[1].size(),
        "a DeepLift rule needs a batch of inputs and their references, got {:?}",
        t.size()
    );
    let mut parts = parts.into_iter();
    Ok((parts.next().unwrap(), parts.next().unwrap()))
}

/// `numerator / Δx`, or `plain` where `|Δx| < eps`.
pub fn multipliers(delta_in: &Tensor, numerator: &Tensor, plain: &Tensor, eps: f64) -> Tensor {
    let small = delta_in.abs().lt(eps);
    plain.where_self(&small, &(numerator / delta_in))
}
