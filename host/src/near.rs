//! The host's side of `forward_near`: batches of inputs that each differ from one base input
//! in a small region (occluded or ablated copies) are evaluated incrementally on graph models
//! (host/src/model/onnx/incremental.rs), from the base's recorded forward pass, which is kept
//! for the next batch with the same base.

use std::sync::Mutex;

use anyhow::Result;
use tch::{Device, Tensor};

use crate::host_services::CPU_BYTES_PER_PASS;
use crate::model::graph::{GraphModel, Reach, Recorded};
use crate::model::Model;

/// The last base input of a job and its recorded forward pass.
#[derive(Default)]
pub struct NearCache(Mutex<Option<NearBase>>);

/// A base input and its recorded forward pass (`None` where the model cannot evaluate
/// incrementally: a fixed batch size, no spatial axes).
struct NearBase {
    base: Tensor,
    recorded: Option<Recorded>,
    /// Perturbed examples evaluated incrementally (the log says how far the first batch's
    /// change stayed local), and the sum of their shares of a full evaluation's work. The first
    /// batch alone (an image's top row of occlusion windows, clipped by the border) understated
    /// the share on a ResNet-18: 38% against 43% over them all.
    examples: u64,
    work: f64,
}

impl NearBase {
    fn new(base: &Tensor, recorded: Option<Recorded>) -> Self {
        NearBase {
            base: base.shallow_clone(),
            recorded,
            examples: 0,
            work: 0.0,
        }
    }
}

impl Drop for NearBase {
    /// Says what share of full evaluations' work the base's examples took, which bounds the
    /// speed-up, once they are all done.
    fn drop(&mut self) {
        if self.examples == 0 {
            return;
        }
        let share = self.work / self.examples as f64;
        tracing::info!(
            "incremental evaluation of {} perturbed examples did {:.0}% of a full \
             evaluation's multiply-adds, so it was at best {:.1}x faster than full evaluation",
            self.examples,
            100.0 * share,
            1.0 / share.max(1e-9)
        );
    }
}

impl NearCache {
    /// The model's output for `inputs`, examples near `base`: incrementally where the model
    /// allows it, as a plain forward pass otherwise.
    pub fn output(
        &self,
        model: &dyn Model,
        graph: &dyn GraphModel,
        base: &Tensor,
        inputs: &Tensor,
    ) -> Result<Tensor> {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.as_ref().is_some_and(|c| same_tensor(&c.base, base)) {
            *cache = Some(NearBase::new(base, tch::no_grad(|| graph.record(base))?));
        }
        let near = cache.as_mut().expect("just filled");
        let Some(recorded) = &near.recorded else {
            return model.forward(inputs);
        };
        let (output, reach) = tch::no_grad(|| forward_near(graph, recorded, inputs))?;
        tracing::debug!(
            "incremental evaluation of {} examples: {:.0}% of a full evaluation's work",
            inputs.size()[0],
            100.0 * reach.computed_share
        );
        if !same_tensor(inputs, base) {
            if near.examples == 0 {
                log_reach(graph, &reach);
            }
            let examples = inputs.size()[0] as u64;
            near.examples += examples;
            near.work += reach.computed_share * examples as f64;
        }
        Ok(output)
    }
}

/// Memory an example of an incremental group costs per byte of the activations a plain forward
/// pass holds at once (convolution workspaces, the boxes' padded windows, the allocator's
/// slack): on the 64^3 UNet of bench/ each example added 210 MiB against 48 MiB of activations.
const BYTES_PER_LIVE_BYTE: u64 = 4;

/// Incremental evaluation of `inputs`, on CPU in groups that fit [`CPU_BYTES_PER_PASS`]: the
/// boxes of a group run as one batch, and where the change reaches a whole layer the rest of
/// the graph holds every copy of the group at once. An example costs about
/// [`BYTES_PER_LIVE_BYTE`] times the activations a plain forward pass of the base held at once.
/// In bench/ (2 cores) a ResNet-18's occlusion with 32x32 windows (6 MiB of activations, groups
/// of 8) took 1.9 s against 3.1 s one at a time; a 64^3 UNet's (48 MiB, one at a time) 4.3 s
/// and 632 MiB against 4.6 s and 1267 MiB four at a time.
fn forward_near(
    graph: &dyn GraphModel,
    recorded: &Recorded,
    inputs: &Tensor,
) -> Result<(Tensor, Reach)> {
    if inputs.device() != Device::Cpu {
        return graph.forward_near(recorded, inputs);
    }
    let batch = inputs.size()[0];
    let per_example = recorded.peak_bytes() * BYTES_PER_LIVE_BYTE;
    let group = (CPU_BYTES_PER_PASS / per_example.max(1)).clamp(1, batch.max(1) as u64);
    let (mut outputs, mut reach) = (Vec::new(), Reach::default());
    for examples in inputs.split(group as i64, 0) {
        let (output, r) = graph.forward_near(recorded, &examples)?;
        reach.whole_from = reach.whole_from.or(r.whole_from);
        reach.computed_share += r.computed_share * examples.size()[0] as f64 / batch as f64;
        outputs.push(output);
    }
    Ok((Tensor::f_cat(&outputs, 0)?, reach))
}

fn same_tensor(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.kind() == b.kind() && a.device() == b.device() && a.equal(b)
}

/// Says how far perturbations stayed local, once per base input.
fn log_reach(graph: &dyn GraphModel, reach: &Reach) {
    match reach.whole_from {
        Some(index) => {
            let node = graph.node(index);
            tracing::info!(
                "incremental evaluation: nodes before `{}` ({}, layer `{}`) recompute only what \
                 a perturbation reaches; there it reaches the whole value, so the rest of the \
                 graph runs in full",
                node.name,
                node.op_type,
                node.layer,
            )
        }
        None => tracing::info!("incremental evaluation: perturbations stay local up to the output"),
    }
}
