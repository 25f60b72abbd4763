//! shap's PartitionExplainer with an Image masker (Owen values over shap's partition tree of
//! the image), as shap 0.51 computes it for one output: starting from the whole image, each
//! group's two halves are switched on in the two contexts (the rest off, and the rest on),
//! and the four sub-problems go into a priority queue ordered by the largest score change
//! times their weight, evaluated `batch_size` masks at a time until `max_evals`; what is left
//! in the queue, and each leaf reached, credits its score difference to its group, and every
//! group's credit is spread over its features in proportion to their count. Hidden features
//! take the masker's value (a constant, or the image blurred). The result equals shap's with
//! `outputs=[target]` (whose queue then orders by the explained class alone) and the same
//! `batch_size`, which shap's queue depends on: it is the order of work, not a memory knob,
//! so the masked images of a batch are evaluated in chunks from the memory budget instead.
//! shap breaks ties in its queue at random; here the earlier entry goes first.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Pass,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::image_masker::{blur, fill, runs, Fill, Region};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// shap's `maskers.Image` `mask_value`: what hidden pixels become. `"blur(kx,ky)"` (a box
    /// blur of the image, `kx` along its width, `ky` along its height, as `cv2.blur`;
    /// `"blur(kx,ky,kz)"` on volumes, widths first) or a number (a constant). shap's
    /// `"inpaint_telea"` and `"inpaint_ns"` need OpenCV's inpainting and are refused.
    pub masker: Masker,
    /// Model evaluations per example, the full and fully masked inputs included (shap's default
    /// 500).
    #[serde(default = "default_max_evals")]
    #[schemars(range(min = 2))]
    pub max_evals: usize,
    /// Masks taken from the queue before their results reorder it (shap's default for an Image
    /// masker, 10). It changes the result as it does in shap; memory is managed apart.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// shap's `fixed_context`: none (both contexts, halving the weight: Owen values), 0 (the
    /// rest off) or 1 (the rest on), the interaction left on the group.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1))]
    pub fixed_context: Option<u8>,
}

/// A masker's value as the configuration gives it.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(untagged)]
pub enum Masker {
    /// The constant every hidden element takes.
    Constant(f64),
    /// `"blur(kx,ky)"`, `"blur(kx,ky,kz)"`.
    Name(String),
}

fn default_max_evals() -> usize {
    500
}
fn default_batch_size() -> usize {
    10
}

pub struct PartitionExplainer;

impl Method for PartitionExplainer {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "shap.partition_explainer",
            title: "PartitionExplainer (shap)",
            summary: "Owen values over shap's hierarchy of image boxes, hidden regions \
                      blurred or set to a constant: shap's Partition explainer with an Image \
                      masker; forward passes only.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Lundberg and Lee, NeurIPS 2017; Owen, Values of games with a priori \
                        unions, 1977; shap.explainers.Partition with shap.maskers.Image",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let size = inputs.size();
        ensure!(
            (4..=5).contains(&size.len()),
            "the partition explainer takes 2D or 3D inputs `[B, C, ...spatial]`, but the input \
             has shape {size:?}"
        );
        let spatial: Vec<usize> = size[2..].iter().map(|&s| s as usize).collect();
        let fill_value = match &p.masker {
            Masker::Constant(v) => Fill::Constant(*v),
            Masker::Name(name) => Fill::parse_name(name, spatial.len())?,
        };
        ensure!(
            matches!(p.fixed_context, None | Some(0) | Some(1)),
            "fixed_context must be 0, 1 or null (shap's values), not {:?}",
            p.fixed_context
        );
        // shap's feature array: spatial axes, then channels.
        let shape: Vec<usize> = spatial.iter().copied().chain([size[1] as usize]).collect();
        let per_pass = ctx.examples_per_pass(&inputs.narrow(0, 0, 1), Pass::Forward);
        let mut maps = Vec::with_capacity(size[0] as usize);
        for j in 0..size[0] {
            let x = inputs.narrow(0, j, 1).to_kind(Kind::Float).contiguous();
            let hidden = hidden_values(&x, &fill_value, &spatial)?;
            let game = Game {
                ctx,
                x: &x,
                hidden: &hidden,
                shape: &shape,
                target,
                per_pass,
            };
            maps.push(owen(&game, &p, j as usize, size[0] as usize)?);
        }
        Ok(Attribution::new(
            Tensor::cat(&maps, 0).to_kind(inputs.kind()),
        ))
    }
}

register_method!(PartitionExplainer);

/// The values hidden elements take, shaped like the example `[1, C, ...spatial]`.
fn hidden_values(x: &Tensor, fill_value: &Fill, spatial: &[usize]) -> Result<Tensor> {
    Ok(match fill_value {
        Fill::Constant(v) => x.full_like(*v as f32 as f64),
        Fill::Blur(kernel) => {
            let values = Vec::<f32>::try_from(x.flatten(0, -1).to_device(tch::Device::Cpu))?;
            let blurred = blur(&values, spatial, kernel);
            Tensor::from_slice(&blurred)
                .view(x.size().as_slice())
                .to_device(x.device())
        }
    })
}

/// One example's masked model: the target score with some regions kept, the rest hidden.
struct Game<'a, 'c> {
    ctx: &'a Context<'c>,
    x: &'a Tensor,
    hidden: &'a Tensor,
    shape: &'a [usize],
    target: i64,
    per_pass: usize,
}

/// A coalition: the union of the kept regions, as a chain sharing its ancestors' links.
struct Kept {
    region: Region,
    rest: Option<Rc<Kept>>,
}

type Coalition = Option<Rc<Kept>>;

fn with(coalition: &Coalition, region: Region) -> Coalition {
    Some(Rc::new(Kept {
        region,
        rest: coalition.clone(),
    }))
}

impl Game<'_, '_> {
    /// Scores of the coalitions, everything else hidden (float32 from the model, then
    /// float64, as shap's masked model averages them into).
    fn scores(&self, coalitions: &[Coalition]) -> Result<Vec<f64>> {
        let numel: usize = self.shape.iter().product();
        let mut out = Vec::with_capacity(coalitions.len());
        for chunk in coalitions.chunks(self.per_pass.max(1)) {
            let mut keep = vec![0u8; numel * chunk.len()];
            for (i, coalition) in chunk.iter().enumerate() {
                let slot = &mut keep[i * numel..(i + 1) * numel];
                let mut link = coalition.as_ref();
                while let Some(k) = link {
                    fill(slot, self.shape, &k.region);
                    link = k.rest.as_ref();
                }
            }
            let mut dims = self.x.size();
            dims[0] = chunk.len() as i64;
            let keep = Tensor::from_slice(&keep)
                .view(dims.as_slice())
                .to_device(self.x.device())
                .to_kind(Kind::Bool);
            let masked = self.x.expand_as(&keep).where_self(&keep, self.hidden);
            let scores = self.ctx.evaluate(&masked, self.target)?;
            let scores = scores.to_kind(Kind::Float).to_device(tch::Device::Cpu);
            out.extend(Vec::<f32>::try_from(scores)?.into_iter().map(f64::from));
        }
        Ok(out)
    }
}

/// A queue entry: the region to split, the coalition around it, the scores without and with it.
struct Task {
    coalition: Coalition,
    f00: f64,
    f11: f64,
    region: Region,
    weight: f64,
}

/// Ordered as shap's `(priority, tie-breaker)` tuples in a min-queue.
struct Queued {
    priority: f64,
    order: u64,
    task: Task,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the smallest priority first.
    fn cmp(&self, other: &Self) -> Ordering {
        let by_priority = self
            .priority
            .partial_cmp(&other.priority)
            .unwrap_or_else(|| self.priority.total_cmp(&other.priority));
        by_priority.then(self.order.cmp(&other.order)).reverse()
    }
}

/// The queue, numbering entries as they come.
struct Queue {
    heap: BinaryHeap<Queued>,
    next: u64,
}

impl Queue {
    /// shap's priority, `-max|f_a - f_b| * weight`.
    fn push(&mut self, task: Task, fa: f64, fb: f64) {
        let priority = -(fa - fb).abs() * task.weight;
        self.push_at(priority, task);
    }

    fn push_at(&mut self, priority: f64, task: Task) {
        self.heap.push(Queued {
            priority,
            order: self.next,
            task,
        });
        self.next += 1;
    }
}

/// shap's `owen` and `lower_credit` for one example: the map `[1, C, ...spatial]`.
fn owen(game: &Game<'_, '_>, p: &Params, example: usize, examples: usize) -> Result<Tensor> {
    let root = Region::whole(game.shape);
    let ends = game.scores(&[None, with(&None, root.clone())])?;
    let (f00, f11) = (ends[0], ends[1]);
    // shap passes max_evals - 2 on: the two ends above are evaluated already.
    let max_evals = p.max_evals.saturating_sub(2);
    let mut credits: Vec<(Region, f64)> = Vec::new();
    let credit = |credits: &mut Vec<(Region, f64)>, t: &Task, value: f64| {
        credits.push((t.region.clone(), value));
    };
    let mut queue = Queue {
        heap: BinaryHeap::new(),
        next: 0,
    };
    queue.push_at(
        0.0,
        Task {
            coalition: None,
            f00,
            f11,
            region: root,
            weight: 1.0,
        },
    );
    let mut evals = 0usize;
    while !queue.heap.is_empty() {
        if evals >= max_evals {
            for q in queue.heap.drain() {
                let t = q.task;
                credits.push((t.region.clone(), (t.f11 - t.f00) * t.weight));
            }
            break;
        }
        game.ctx.check_cancelled()?;
        let mut batch: Vec<(Task, Region, Region)> = Vec::new();
        let mut masks: Vec<Coalition> = Vec::new();
        while masks.len() < p.batch_size && evals + masks.len() < max_evals {
            let Some(q) = queue.heap.pop() else { break };
            let t = q.task;
            let Some((left, right)) = t.region.split() else {
                let value = (t.f11 - t.f00) * t.weight;
                credit(&mut credits, &t, value);
                continue;
            };
            masks.push(with(&t.coalition, left.clone()));
            masks.push(with(&t.coalition, right.clone()));
            batch.push((t, left, right));
        }
        let scores = if masks.is_empty() {
            Vec::new()
        } else {
            game.scores(&masks)?
        };
        evals += masks.len();
        for (i, (t, left, right)) in batch.into_iter().enumerate() {
            let (f10, f01) = (scores[2 * i], scores[2 * i + 1]);
            let m10 = masks[2 * i].clone();
            let m01 = masks[2 * i + 1].clone();
            let interaction = (t.f11 - f10 - f01 + t.f00) * t.weight;
            let weight = match p.fixed_context {
                None => t.weight / 2.0,
                Some(0) => {
                    credit(&mut credits, &t, interaction);
                    t.weight
                }
                Some(_) => {
                    credit(&mut credits, &t, -interaction);
                    t.weight
                }
            };
            let off = |region: &Region, coalition: &Coalition, a: f64, b: f64| Task {
                coalition: coalition.clone(),
                f00: a,
                f11: b,
                region: region.clone(),
                weight,
            };
            if p.fixed_context != Some(1) {
                queue.push(off(&left, &t.coalition, t.f00, f10), f10, t.f00);
                queue.push(off(&right, &t.coalition, t.f00, f01), f01, t.f00);
            }
            if p.fixed_context != Some(0) {
                queue.push(off(&left, &m01, f01, t.f11), t.f11, f01);
                queue.push(off(&right, &m10, f10, t.f11), t.f11, f10);
            }
        }
        let done = example * p.max_evals + (evals + 2).min(p.max_evals);
        game.ctx.progress(done, examples * p.max_evals);
    }
    Ok(spread(&credits, game.shape, game.x))
}

/// `lower_credit`: each group's credit shared equally by its features, summed per feature.
fn spread(credits: &[(Region, f64)], shape: &[usize], like: &Tensor) -> Tensor {
    let numel: usize = shape.iter().product();
    let mut map = vec![0f64; numel];
    for (region, value) in credits {
        let share = value / region.size() as f64;
        runs(shape, region, |start, len| {
            for m in &mut map[start..start + len] {
                *m += share;
            }
        });
    }
    Tensor::from_slice(&map)
        .view(like.size().as_slice())
        .to_kind(Kind::Float)
        .to_device(like.device())
}
