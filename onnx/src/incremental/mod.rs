//! Exact incremental evaluation of a graph, the idea of Krypton (Nakandala, Kumar and
//! Papakonstantinou, "Incremental and Approximate Inference for Faster Occlusion-based Deep CNN
//! Explanations", SIGMOD 2019).
//!
//! Perturbation methods evaluate many copies of one input that each differ from it only inside
//! a small box: an occlusion window, a feature group. With every value of a forward pass on
//! that base input recorded, a node of a copy needs only the part of its output that the
//! change can reach: a box, grown by each window it passes through (see [`Locality`]). The rest
//! is the base's. The node's own op computes that box from a window of its input, so the
//! values are the ones a full forward pass computes.
//!
//! Where the reach covers a whole value (global pooling, a fully connected layer, a change that
//! has spread over the image), the graph goes on in full from there, batched as usual.

use anyhow::{bail, ensure, Context, Result};
use tch::Tensor;

use super::graph::{describe_failure, run_node, Graph, Node};
use crate::graph_model::{Locality, SlidingWindow};

mod boxes;
use boxes::*;

/// A forward pass on one base input `[1, ...]`: the shape of every value, and the values
/// incremental evaluation reads (the windows' inputs, what goes into nodes that run in full);
/// the others (the output of a convolution that only its batch norm reads, ...) are dropped to
/// save memory.
pub struct Recorded {
    base: Tensor,
    values: Vec<Option<Tensor>>,
    shapes: Vec<Option<Vec<i64>>>,
    /// Each node's locality, from the base's pass (it may need values dropped since).
    localities: Vec<Locality>,
    /// The most bytes of activations a plain forward pass of the base held at once.
    peak_bytes: u64,
}

/// What one incremental evaluation did.
#[derive(Clone, Debug, Default)]
pub struct Reach {
    /// The first node whose output changed everywhere while its inputs did not: from there on
    /// the graph ran in full. `None` when the change stayed local to the end.
    pub whole_from: Option<usize>,
    /// Work done, over the work of a full forward pass of the nodes that depend on the input:
    /// output elements, each weighted by the multiply-adds it takes (see [`work_per_output`]).
    /// Its inverse bounds how much faster incremental evaluation can be.
    pub computed_share: f64,
}

impl Graph {
    /// Runs the graph on `base` (`[1, ...]`) and keeps every value.
    pub fn record(&self, base: &Tensor) -> Result<Recorded> {
        let mut values: Vec<Option<Tensor>> = (0..self.slots).map(|_| None).collect();
        for (slot, _, t) in &self.initializers {
            values[*slot] = Some(t.shallow_clone());
        }
        values[self.input] = Some(base.shallow_clone());
        let mut shapes: Vec<Option<Vec<i64>>> = values
            .iter()
            .map(|v| v.as_ref().map(Tensor::size))
            .collect();
        // Initializers stay: they are the model.
        let mut read = vec![false; self.slots];
        for (slot, _, _) in &self.initializers {
            read[*slot] = true;
        }
        for (slot, _) in &self.outputs {
            read[*slot] = true;
        }
        let mut localities = Vec::with_capacity(self.nodes.len());
        // What a plain forward pass holds: the outputs of the nodes so far, until released.
        let mut produced = vec![0u64; self.slots];
        let (mut live, mut peak_bytes) = (0u64, 0u64);
        for (index, node) in self.nodes.iter().enumerate() {
            let inputs = base_values(&values, &node.inputs);
            let outputs = run_node(node, &inputs)?;
            let locality = node
                .op
                .locality(&inputs)
                .with_context(|| describe_failure(node, &inputs))?;
            let output = outputs.first().map(Tensor::size).unwrap_or_default();
            for (i, slot) in node.inputs.iter().enumerate() {
                if let Some(slot) = slot {
                    read[*slot] |= reads_base(node, &locality, &inputs, &output, i);
                }
            }
            if matches!(locality, Locality::Transposed(_)) {
                // Its box is the base's output plus what the change adds.
                for slot in node.outputs.iter().flatten() {
                    read[*slot] = true;
                }
            }
            localities.push(locality);
            for (slot, value) in node.outputs.iter().zip(outputs) {
                if let Some(slot) = slot {
                    produced[*slot] = (value.numel() * value.kind().elt_size_in_bytes()) as u64;
                    live += produced[*slot];
                    shapes[*slot] = Some(value.size());
                    values[*slot] = Some(value);
                }
            }
            peak_bytes = peak_bytes.max(live);
            // As a plain forward pass frees values, so that recording peaks no higher.
            for &slot in &self.release[index] {
                live -= std::mem::take(&mut produced[slot]);
                if !read[slot] {
                    values[slot] = None;
                }
            }
        }
        let kept: usize = values
            .iter()
            .flatten()
            .map(|v| v.numel() * v.kind().elt_size_in_bytes())
            .sum();
        tracing::debug!(
            "incremental evaluation keeps {} MiB of the base's values; a plain forward pass held \
             {} MiB at most",
            kept >> 20,
            peak_bytes >> 20
        );
        Ok(Recorded {
            base: base.shallow_clone(),
            values,
            shapes,
            localities,
            peak_bytes,
        })
    }

    /// Output `output` for `inputs` `[B, ...]`, each example of which may differ from the
    /// recorded base anywhere; only what the differences reach is recomputed.
    pub fn run_near(
        &self,
        rec: &Recorded,
        inputs: &Tensor,
        output: usize,
    ) -> Result<(Tensor, Reach)> {
        let (size, base_size) = (inputs.size(), rec.base.size());
        ensure!(
            base_size[0] == 1 && size.len() >= 3 && size[1..] == base_size[1..],
            "incremental evaluation needs a base of one example and inputs of its shape with \
             spatial axes, got {base_size:?} and {size:?}"
        );
        let batch = size[0];
        let mut deltas: Vec<Option<Delta>> = (0..self.slots).map(|_| None).collect();
        deltas[self.input] = Some(input_delta(inputs, &rec.base)?);
        let mut reach = Reach::default();
        let (mut computed, mut full) = (0f64, 0f64);
        for (index, node) in self.nodes.iter().enumerate() {
            let changed: Vec<Option<&Delta>> = (node.inputs.iter().enumerate())
                .map(|(i, s)| s.filter(|_| node.op.reads_values(i)))
                .map(|s| s.and_then(|s| deltas[s].as_ref()))
                .collect();
            if changed.iter().any(Option::is_some) {
                let step = Step {
                    node,
                    locality: &rec.localities[index],
                    rec,
                    batch,
                    base_inputs: base_values(&rec.values, &node.inputs),
                    changed,
                };
                let outputs = step.run()?;
                // Shapes (integers) do not count: they say nothing of where a change went.
                if reach.whole_from.is_none()
                    && outputs.iter().any(Delta::is_whole_values)
                    && !step.changed.iter().flatten().any(|d| d.is_whole())
                {
                    reach.whole_from = Some(index);
                }
                let work = work_per_output(node, &rec.localities[index], rec);
                for (slot, delta) in node.outputs.iter().zip(outputs) {
                    if let Some(slot) = slot {
                        let numel = rec.shape(*slot)?.iter().product::<i64>() * batch;
                        computed += work * delta.numel() as f64;
                        full += work * numel as f64;
                        deltas[*slot] = Some(delta);
                    }
                }
            }
            for &slot in &self.release[index] {
                deltas[slot] = None;
            }
        }
        reach.computed_share = computed / full.max(1.0);
        let slot = self.outputs[output].0;
        let base = rec.value(slot)?;
        let out = match deltas[slot].take() {
            Some(delta) => materialise(&delta, base, batch)?,
            // An output that does not depend on the input is what the base's pass gave.
            None => base.shallow_clone(),
        };
        Ok((out, reach))
    }
}

/// Multiply-adds per output element of `node`: a convolution's weights per output channel (a
/// transposed one's over its strides, ignoring groups), a matrix product's inner dimension; 1
/// for everything else, whose cost is small beside them.
fn work_per_output(node: &Node, locality: &Locality, rec: &Recorded) -> f64 {
    let shape = |i: usize| {
        node.inputs
            .get(i)
            .copied()
            .flatten()
            .and_then(|s| rec.shapes[s].as_deref())
    };
    let work: i64 = match node.op_type.as_str() {
        "Conv" => shape(1).map_or(1, |w| w[1..].iter().product()),
        "ConvTranspose" => match (locality, shape(1)) {
            (Locality::Transposed(t), Some(w)) => {
                w[0] * w[2..].iter().product::<i64>() / t.stride.iter().product::<i64>().max(1)
            }
            _ => 1,
        },
        // The inner dimension, A's last (Gemm's transA is rare enough to ignore here).
        "MatMul" | "Gemm" => shape(0).and_then(|a| a.last().copied()).unwrap_or(1),
        _ => 1,
    };
    work.max(1) as f64
}

/// Whether incremental evaluation may read the base's value of input `i` of `node`: every
/// input of a node that runs in full, the data input of a window, and the inputs of an
/// elementwise node that combines several values (their boxes differ). A single value through
/// an activation or a batch norm keeps its box, so nothing of the base is read.
fn reads_base(
    node: &Node,
    locality: &Locality,
    inputs: &[Option<Tensor>],
    output: &[i64],
    i: usize,
) -> bool {
    let computed = |j: usize| !node.input_is_constant[j] && inputs[j].is_some();
    if !computed(i) {
        return true;
    }
    let single = (0..inputs.len()).filter(|&j| computed(j)).count() == 1;
    let data = match locality {
        Locality::Global => return true,
        Locality::Window(_) | Locality::Upsample { .. } | Locality::Transposed(_) => return i == 0,
        Locality::Channelwise => 1,
        Locality::Pointwise => inputs.len(),
    };
    // Unless the node would run in full: an input that does not fit a box.
    let fits = inputs.iter().enumerate().all(|(j, t)| match t {
        Some(t) if j != i => fits_a_box(&t.size(), output, j < data),
        Some(t) => output.len() >= 3 && t.dim() == output.len() && t.size()[2..] == output[2..],
        None => true,
    });
    !(single && fits)
}

/// Whether an unchanged input of `size` can go into an elementwise node that computes a box of
/// its output (`output` its full shape): it broadcasts over the spatial axes, or, as a data
/// input, it has the output's spatial shape and is cut to the box.
fn fits_a_box(size: &[i64], output: &[i64], data: bool) -> bool {
    let rank = output.len();
    rank >= 3
        && (broadcasts_over_space(size, rank)
            || !data
            || (size.len() == rank && size[2..] == output[2..]))
}

impl Recorded {
    /// The most bytes of activations a plain forward pass of the base held at once: what one
    /// more example in a batch costs, at worst.
    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes
    }

    fn value(&self, slot: usize) -> Result<&Tensor> {
        match &self.values[slot] {
            Some(t) => Ok(t),
            None => bail!("the recorded forward pass kept no value in slot {slot}"),
        }
    }

    fn shape(&self, slot: usize) -> Result<&[i64]> {
        match &self.shapes[slot] {
            Some(s) => Ok(s),
            None => bail!("the recorded forward pass has no value in slot {slot}"),
        }
    }
}

fn base_values(values: &[Option<Tensor>], slots: &[Option<usize>]) -> Vec<Option<Tensor>> {
    slots
        .iter()
        .map(|s| s.and_then(|s| values[s].as_ref().map(Tensor::shallow_clone)))
        .collect()
}

fn shallow(values: &[Option<Tensor>]) -> Vec<Option<Tensor>> {
    values
        .iter()
        .map(|t| t.as_ref().map(Tensor::shallow_clone))
        .collect()
}

/// One node of an incremental evaluation.
struct Step<'a> {
    node: &'a Node,
    locality: &'a Locality,
    rec: &'a Recorded,
    batch: i64,
    /// The node's inputs in the base's forward pass.
    base_inputs: Vec<Option<Tensor>>,
    /// Per input, how the batch's value differs (None: it does not).
    changed: Vec<Option<&'a Delta>>,
}

impl Step<'_> {
    fn run(&self) -> Result<Vec<Delta>> {
        let local = match self.local() {
            Ok(local) => local,
            Err(e) => return Err(e.context(describe_failure(self.node, &self.base_inputs))),
        };
        match local {
            Some(delta) => Ok(vec![delta]),
            None => self.whole(),
        }
    }

    /// The node's output as a box, when its locality allows one smaller than the output.
    fn local(&self) -> Result<Option<Delta>> {
        if self.node.outputs.len() != 1 || self.changed.iter().flatten().any(|d| d.is_whole()) {
            return Ok(None);
        }
        match self.locality {
            Locality::Global => Ok(None),
            Locality::Pointwise => self.pointwise(usize::MAX),
            Locality::Channelwise => self.pointwise(1),
            Locality::Window(w) => self.window(w),
            Locality::Upsample { factors } => self.upsample(factors),
            Locality::Transposed(w) => self.transposed(w),
        }
    }

    /// The whole output: changed inputs in full, unchanged ones as recorded.
    fn whole(&self) -> Result<Vec<Delta>> {
        let mut inputs = Vec::with_capacity(self.changed.len());
        for (delta, base) in self.changed.iter().zip(&self.base_inputs) {
            inputs.push(match (delta, base) {
                (Some(Delta::Whole(t)), _) => Some(t.shallow_clone()),
                (Some(delta), Some(base)) => Some(materialise(delta, base, self.batch)?),
                (Some(_), None) => bail!("the recorded forward pass dropped an input it needs"),
                (None, base) => base.as_ref().map(Tensor::shallow_clone),
            });
        }
        let outputs = run_node(self.node, &inputs)?;
        Ok(outputs.into_iter().map(Delta::Whole).collect())
    }

    fn output_size(&self) -> Result<Vec<i64>> {
        let slot = self.node.outputs[0].context("the node's output is unused")?;
        Ok(self.rec.shape(slot)?.to_vec())
    }

    /// Elementwise ops over the first `data` inputs (the rest are parameters): the union of
    /// the inputs' boxes, computed from each input's window.
    fn pointwise(&self, data: usize) -> Result<Option<Delta>> {
        let out = self.output_size()?;
        let rank = out.len();
        if rank < 3 {
            return Ok(None);
        }
        let space = &out[2..];
        let mut windowed = vec![false; self.changed.len()];
        let mut boxes = Vec::new();
        for (i, (delta, slot)) in self.changed.iter().zip(&self.node.inputs).enumerate() {
            let Some(slot) = slot else { continue };
            let size = self.rec.shape(*slot)?;
            let aligned = size.len() == rank && &size[2..] == space;
            match delta {
                Some(Delta::Boxed(b, _)) if i < data && aligned => boxes.push(b),
                Some(_) => return Ok(None),
                None if !fits_a_box(size, &out, i < data) => return Ok(None),
                None if i < data && !broadcasts_over_space(size, rank) => windowed[i] = true,
                None => {}
            }
        }
        if let ([only], false) = (&boxes[..], windowed.contains(&true)) {
            // One value through an activation: its box is the output's, nothing to read.
            let inputs: Vec<Option<Tensor>> = (self.changed.iter().zip(&self.base_inputs))
                .map(|(delta, base)| match delta {
                    Some(Delta::Boxed(_, v)) => Some(v.shallow_clone()),
                    _ => base.as_ref().map(Tensor::shallow_clone),
                })
                .collect();
            let mut outputs = self.node.op.run(&inputs)?;
            return Ok(Some(Delta::Boxed((*only).clone(), outputs.remove(0))));
        }
        let ranges = union(&boxes);
        let target = uniform(&ranges, space);
        if target.size == space {
            return Ok(None);
        }
        let mut inputs = Vec::with_capacity(self.changed.len());
        for (i, (delta, base)) in self.changed.iter().zip(&self.base_inputs).enumerate() {
            inputs.push(match (delta, base) {
                (Some(Delta::Boxed(b, v)), Some(base)) => {
                    let window = crop_each(base, &target.starts, &target.size)?;
                    overlay(&window, &target, b, v, &vec![0; space.len()])?;
                    Some(window)
                }
                (None, Some(base)) if windowed[i] => {
                    Some(crop_each(base, &target.starts, &target.size)?)
                }
                (_, base) => base.as_ref().map(Tensor::shallow_clone),
            });
        }
        let mut outputs = self.node.op.run(&inputs)?;
        Ok(Some(Delta::Boxed(target, outputs.remove(0))))
    }

    /// The single changed input 0 of a window or upsampling node, and its recorded value.
    fn data_input(&self) -> Option<(&Boxes, &Tensor, &Tensor)> {
        if self.changed.iter().skip(1).any(Option::is_some) {
            return None;
        }
        match (self.changed.first(), self.base_inputs.first()) {
            (Some(Some(Delta::Boxed(b, v))), Some(Some(base))) => Some((b, v, base)),
            _ => None,
        }
    }

    /// A convolution or pool: the outputs whose window meets the change, each computed from
    /// its window of the (padded) input without padding.
    fn window(&self, w: &SlidingWindow) -> Result<Option<Delta>> {
        let Some((changed, values, base)) = self.data_input() else {
            return Ok(None);
        };
        let out = self.output_size()?;
        let space = &out[2..];
        let n = space.len();
        let ranges: Vec<Vec<(i64, i64)>> = changed
            .starts
            .iter()
            .map(|start| {
                (0..n)
                    .map(|d| {
                        let (a, b) = (start[d], start[d] + changed.size[d]);
                        let (s, p, e) = (w.stride[d], w.pad_begin[d], w.extent[d]);
                        let lo = ceil_div(a + p - e + 1, s).clamp(0, space[d] - 1);
                        let hi = ((b - 1 + p).div_euclid(s) + 1).min(space[d]);
                        (lo, hi.max(lo + 1))
                    })
                    .collect()
            })
            .collect();
        let target = uniform(&ranges, space);
        if target.size == space {
            return Ok(None);
        }
        // Each output's window, in input coordinates: it may start before 0 or end past the
        // input, where it reads padding.
        let windows = strided_span(&target, w);
        let x = padded_windows(base, &windows, w.pad_value)?;
        overlay(&x, &windows, changed, values, &vec![0; n])?;
        let mut inputs = shallow(&self.base_inputs);
        inputs[0] = Some(x);
        let y = self.node.op.run_valid(&inputs)?.remove(0);
        ensure!(
            y.size()[2..] == target.size[..],
            "the unpadded op gave shape {:?} for the box {:?}",
            y.size(),
            target.size
        );
        Ok(Some(Delta::Boxed(target, y)))
    }

    /// A transposed convolution, linear in its input: the base's output plus the transposed
    /// convolution (without bias) of the change, which spreads each changed box over
    /// `(size - 1) * stride + extent` outputs.
    fn transposed(&self, w: &SlidingWindow) -> Result<Option<Delta>> {
        let Some((changed, values, base)) = self.data_input() else {
            return Ok(None);
        };
        let out = self.output_size()?;
        let space = &out[2..];
        let n = space.len();
        let spread = strided_span(changed, w);
        let ranges: Vec<Vec<(i64, i64)>> = (spread.starts.iter())
            .map(|o| {
                (0..n)
                    .map(|d| {
                        let lo = o[d].clamp(0, space[d] - 1);
                        (lo, (o[d] + spread.size[d]).clamp(lo + 1, space[d]))
                    })
                    .collect()
            })
            .collect();
        let target = uniform(&ranges, space);
        if target.size == space {
            return Ok(None);
        }
        let mut inputs: Vec<Option<Tensor>> = shallow(&self.base_inputs);
        inputs[0] = Some(values.f_sub(&crop_each(base, &changed.starts, &changed.size)?)?);
        if let Some(bias) = inputs.get_mut(2) {
            *bias = None;
        }
        let added = self.node.op.run_valid(&inputs)?.remove(0);
        let slot = self.node.outputs[0].context("the node's output is unused")?;
        let y = crop_each(self.rec.value(slot)?, &target.starts, &target.size)?;
        let change = y.f_zeros_like()?;
        overlay(&change, &target, &spread, &added, &vec![0; n])?;
        Ok(Some(Delta::Boxed(target, y.f_add(&change)?)))
    }

    /// Integer upsampling: the outputs within one input position of the change, from a window
    /// of the input with a margin of one, cropped.
    fn upsample(&self, factors: &[i64]) -> Result<Option<Delta>> {
        let Some((changed, values, base)) = self.data_input() else {
            return Ok(None);
        };
        let out = self.output_size()?;
        let (space, source) = (&out[2..], &base.size()[2..]);
        let n = space.len();
        let per_axis = |start: &[i64], f: &dyn Fn(usize, i64, i64) -> (i64, i64)| {
            (0..n).map(|d| f(d, start[d], changed.size[d])).collect()
        };
        let ranges: Vec<Vec<(i64, i64)>> = changed
            .starts
            .iter()
            .map(|s| {
                per_axis(s, &|d, a, len| {
                    let f = factors[d];
                    (((a - 1) * f).max(0), ((a + len + 1) * f).min(space[d]))
                })
            })
            .collect();
        let target = uniform(&ranges, space);
        if target.size == space {
            return Ok(None);
        }
        let reads: Vec<Vec<(i64, i64)>> = target
            .starts
            .iter()
            .map(|o| {
                (0..n)
                    .map(|d| {
                        let (f, last) = (factors[d], o[d] + target.size[d] - 1);
                        ((o[d] / f - 1).max(0), (last / f + 2).min(source[d]))
                    })
                    .collect()
            })
            .collect();
        let windows = uniform(&reads, source);
        let x = crop_each(base, &windows.starts, &windows.size)?;
        overlay(&x, &windows, changed, values, &vec![0; n])?;
        let mut inputs = shallow(&self.base_inputs);
        inputs[0] = Some(x);
        let y = self.node.op.run(&inputs)?.remove(0);
        let offsets: Vec<Vec<i64>> = target
            .starts
            .iter()
            .zip(&windows.starts)
            .map(|(o, w)| (0..n).map(|d| o[d] - w[d] * factors[d]).collect())
            .collect();
        let y = crop_each(&y, &offsets, &target.size)?;
        Ok(Some(Delta::Boxed(target, y)))
    }
}
