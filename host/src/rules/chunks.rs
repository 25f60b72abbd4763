//! A rule pass on a model exported with a fixed batch size, which accepts no other: the
//! forward pass is recorded in chunks of that size (the last padded with copies of its last
//! example), and each node's chunks are joined into one record of the whole batch. Rules then
//! see the batch as one, so DeepLift's `[inputs; references]` halves pair up however they fall
//! across chunks, and a node's plain product runs chunk by chunk on the autograd graphs its
//! chunks' forward passes left (padding rows get zero gradients, so they add nothing).

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::Recorded;
use crate::model::graph::pad_batch;

/// The chunks of one node's record, and how they make the batch.
pub struct Parts {
    pub chunks: Vec<Recorded>,
    /// The fixed batch size of every chunk.
    pub chunk: i64,
    /// The real batch: the joined values' first dimension.
    pub batch: i64,
}

/// `inputs` split into chunks of exactly `chunk` examples, the last padded.
pub fn split(inputs: &Tensor, chunk: i64) -> Result<Vec<Tensor>> {
    let batch = inputs.size()[0];
    (0..batch)
        .step_by(chunk as usize)
        .map(|start| pad_batch(inputs.f_narrow(0, start, chunk.min(batch - start))?, chunk))
        .collect()
}

/// One node's records of every chunk, joined: values that carry the batch (those autograd
/// connects to the model input, or whose chunks differ) are concatenated and cut to `batch`;
/// the others (weights, shapes, constants) are the same in every chunk and kept once.
pub fn join(chunks: Vec<Recorded>, chunk: i64, batch: i64) -> Result<Recorded> {
    if chunks.is_empty() {
        bail!("a fixed-batch rule pass recorded no chunks");
    }
    let slots = chunks[0].inputs.len();
    let inputs = (0..slots)
        .map(|i| {
            let values: Option<Vec<&Tensor>> =
                chunks.iter().map(|c| c.inputs[i].as_ref()).collect();
            values.map(|v| joined(&v, chunk, batch)).transpose()
        })
        .collect::<Result<_>>()?;
    let outputs = (0..chunks[0].outputs.len())
        .map(|i| {
            let values: Vec<&Tensor> = chunks.iter().map(|c| &c.outputs[i]).collect();
            joined(&values, chunk, batch)
        })
        .collect::<Result<_>>()?;
    Ok(Recorded {
        inputs,
        outputs,
        parts: Some(Box::new(Parts {
            chunks,
            chunk,
            batch,
        })),
    })
}

fn joined(values: &[&Tensor], chunk: i64, batch: i64) -> Result<Tensor> {
    if !carries_batch(values, chunk)? {
        return Ok(values[0].shallow_clone());
    }
    let detached: Vec<Tensor> = values.iter().map(|t| t.detach()).collect();
    Ok(Tensor::f_cat(&detached, 0)?.f_narrow(0, 0, batch)?)
}

fn carries_batch(values: &[&Tensor], chunk: i64) -> Result<bool> {
    let first = values[0];
    if first.dim() == 0 || first.size()[0] != chunk {
        return Ok(false);
    }
    if first.requires_grad() {
        return Ok(true);
    }
    // A lone chunk cannot tell a value of the batch from a constant of the same length (a
    // Reshape's target shape `[2, -1]` on a batch of 2): without autograd history, a constant.
    for other in &values[1..] {
        if other.size() != first.size() || !other.f_equal(first)? {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Parts {
    /// The plain product of the node chunk by chunk: each output gradient of the whole batch
    /// cut into the chunks' rows (zeros for padding), each chunk's own product, the results
    /// joined again.
    pub fn vjp(&self, grad_outputs: &[Option<Tensor>]) -> Result<Vec<Option<Tensor>>> {
        let mut per_input: Vec<Vec<Option<Tensor>>> = Vec::new();
        for (c, chunk) in self.chunks.iter().enumerate() {
            let start = c as i64 * self.chunk;
            let len = self.chunk.min(self.batch - start);
            let grads = grad_outputs
                .iter()
                .zip(&chunk.outputs)
                .map(|(g, out)| {
                    g.as_ref()
                        .map(|g| self.rows_of(g, out, start, len))
                        .transpose()
                })
                .collect::<Result<Vec<_>>>()?;
            per_input.push(chunk.vjp(&grads)?);
        }
        let slots = self.chunks[0].inputs.len();
        (0..slots)
            .map(|i| self.join_gradients(&per_input, i))
            .collect()
    }

    /// Rows `start..start + len` of a whole-batch gradient, padded with zeros to the chunk
    /// (a gradient of a value that does not carry the batch is the chunk's as it is).
    fn rows_of(&self, g: &Tensor, out: &Tensor, start: i64, len: i64) -> Result<Tensor> {
        let carries = out.dim() > 0
            && out.size()[0] == self.chunk
            && out.requires_grad()
            && g.dim() > 0
            && g.size()[0] == self.batch;
        if !carries {
            return Ok(g.shallow_clone());
        }
        let rows = g.f_narrow(0, start, len)?;
        if len == self.chunk {
            return Ok(rows);
        }
        let mut shape = rows.size();
        shape[0] = self.chunk - len;
        let zeros = Tensor::f_zeros(&shape, (rows.kind(), rows.device()))?;
        Ok(Tensor::f_cat(&[rows, zeros], 0)?)
    }

    /// Input `i`'s gradients of every chunk as one: concatenated and cut to the batch when
    /// the input carries it, summed when it is shared (a weight).
    fn join_gradients(
        &self,
        per_input: &[Vec<Option<Tensor>>],
        i: usize,
    ) -> Result<Option<Tensor>> {
        let grads: Vec<&Tensor> = per_input.iter().filter_map(|g| g[i].as_ref()).collect();
        if grads.is_empty() {
            return Ok(None);
        }
        if grads.len() != per_input.len() {
            bail!("a node's chunks disagree on which inputs take a gradient");
        }
        let carries = self.chunks[0].inputs[i]
            .as_ref()
            .is_some_and(|t| t.dim() > 0 && t.size()[0] == self.chunk && t.requires_grad());
        if carries {
            let parts: Vec<Tensor> = grads.iter().map(|g| g.shallow_clone()).collect();
            return Ok(Some(Tensor::f_cat(&parts, 0)?.f_narrow(0, 0, self.batch)?));
        }
        let mut sum = grads[0].to_kind(Kind::Float);
        for g in &grads[1..] {
            sum = sum + g.to_kind(Kind::Float);
        }
        Ok(Some(sum.to_kind(grads[0].kind())))
    }
}
