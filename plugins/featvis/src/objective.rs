//! Lucent 0.1.8's objectives, composable as its `objectives` compose them: a channel's or a
//! neuron's mean, a layer's mean (Lucid's `layer` objective, which Lucent leaves out), a
//! direction in channel space (cosine similarity), the diversity of a batch of images (the
//! cosine similarity of their Gram matrices, penalised), and weighted sums of these. Each is a
//! loss to minimise, minus what it excites, as in Lucent. A layer left out of an objective is
//! the method's `layer` (`--layer`).

use std::collections::BTreeMap;

use anyhow::{ensure, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

/// One objective. JSON: `{"channel": {"channel": 3}}`, `{"neuron": {"channel": 3, "position":
/// "centre"}}`, `{"layer": {}}`, `{"direction": {"direction": [1, 0, ...]}}`,
/// `{"diversity": {"layer": "conv1"}}`, `{"sum": [{"weight": 1, "objective": ...}, ...]}`.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Objective {
    /// Lucent's `channel`: the channel's mean over positions (and the batch, or one image).
    Channel {
        #[serde(default)]
        layer: Option<String>,
        #[schemars(range(min = 0))]
        channel: i64,
        /// Only this image of the batch (Lucent's `batch`).
        #[serde(default)]
        batch: Option<i64>,
    },
    /// Lucent's `neuron`: the channel at one position of the layer's grid.
    Neuron {
        #[serde(default)]
        layer: Option<String>,
        #[schemars(range(min = 0))]
        channel: i64,
        /// One index per spatial axis, or `"centre"` (Lucent's default: size / 2 per axis).
        #[serde(default = "centre")]
        position: Position,
        #[serde(default)]
        batch: Option<i64>,
    },
    /// The layer's mean activation, over channels, positions and the batch.
    Layer {
        #[serde(default)]
        layer: Option<String>,
    },
    /// Lucent's `direction`: the cosine similarity of each position's channel vector with
    /// `direction` (one number per channel), averaged.
    Direction {
        #[serde(default)]
        layer: Option<String>,
        direction: Vec<f64>,
        #[serde(default)]
        batch: Option<i64>,
    },
    /// Lucent's `diversity`: minus the mean, over pairs of the batch's images, of the cosine
    /// similarity of their Gram matrices at the layer; needs `batch` above 1 to do anything.
    Diversity {
        #[serde(default)]
        layer: Option<String>,
    },
    /// A weighted sum of objectives (Lucent's `a * obj1 + b * obj2`).
    Sum(Vec<Weighted>),
}

#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Weighted {
    #[serde(default = "one")]
    pub weight: f64,
    pub objective: Objective,
}

#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(untagged)]
pub enum Position {
    At(Vec<i64>),
    Named(Centre),
}

#[derive(Deserialize, JsonSchema, Clone, Copy, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Centre {
    Centre,
}

fn centre() -> Position {
    Position::Named(Centre::Centre)
}

fn one() -> f64 {
    1.0
}

impl Objective {
    /// The objective with every missing layer set to `default`, or an error naming the
    /// objective that has none.
    pub fn resolve(self, default: Option<&str>) -> Result<Objective> {
        let fill = |layer: Option<String>, kind: &str| -> Result<Option<String>> {
            let layer = layer.or_else(|| default.map(str::to_string));
            ensure!(
                layer.is_some(),
                "the {kind} objective names no layer: give `layer` in it, or the method's \
                 `layer` (--layer)"
            );
            Ok(layer)
        };
        Ok(match self {
            Objective::Channel {
                layer,
                channel,
                batch,
            } => Objective::Channel {
                layer: fill(layer, "channel")?,
                channel,
                batch,
            },
            Objective::Neuron {
                layer,
                channel,
                position,
                batch,
            } => Objective::Neuron {
                layer: fill(layer, "neuron")?,
                channel,
                position,
                batch,
            },
            Objective::Layer { layer } => Objective::Layer {
                layer: fill(layer, "layer")?,
            },
            Objective::Direction {
                layer,
                direction,
                batch,
            } => Objective::Direction {
                layer: fill(layer, "direction")?,
                direction,
                batch,
            },
            Objective::Diversity { layer } => Objective::Diversity {
                layer: fill(layer, "diversity")?,
            },
            Objective::Sum(terms) => Objective::Sum(
                terms
                    .into_iter()
                    .map(|t| {
                        Ok(Weighted {
                            weight: t.weight,
                            objective: t.objective.resolve(default)?,
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
        })
    }

    /// The layers the objective reads (after [`Objective::resolve`]).
    pub fn layers(&self, into: &mut Vec<String>) {
        let mut push = |layer: &Option<String>| {
            if let Some(l) = layer {
                if !into.contains(l) {
                    into.push(l.clone());
                }
            }
        };
        match self {
            Objective::Channel { layer, .. }
            | Objective::Neuron { layer, .. }
            | Objective::Layer { layer }
            | Objective::Direction { layer, .. }
            | Objective::Diversity { layer } => push(layer),
            Objective::Sum(terms) => terms.iter().for_each(|t| t.objective.layers(into)),
        }
    }

    /// The loss for the layers' values (`layer name -> [B, C, ...]`).
    pub fn loss(&self, values: &BTreeMap<String, Tensor>) -> Result<Tensor> {
        let value = |layer: &Option<String>| -> &Tensor {
            &values[layer
                .as_deref()
                .expect("resolved objectives name their layer")]
        };
        let name = |layer: &Option<String>| layer.clone().unwrap_or_default();
        Ok(match self {
            Objective::Channel {
                layer,
                channel,
                batch,
            } => {
                let t = one_image(value(layer), *batch, &name(layer))?;
                -pick_channel(&t, *channel, &name(layer))?.mean(Kind::Float)
            }
            Objective::Neuron {
                layer,
                channel,
                position,
                batch,
            } => {
                let t = one_image(value(layer), *batch, &name(layer))?;
                let unit = pick_channel(&t, *channel, &name(layer))?;
                -at(&unit, position, &name(layer))?.mean(Kind::Float)
            }
            Objective::Layer { layer } => -value(layer).mean(Kind::Float),
            Objective::Direction {
                layer,
                direction,
                batch,
            } => {
                let t = one_image(value(layer), *batch, &name(layer))?;
                -cosine_to(&t, direction, &name(layer))?.mean(Kind::Float)
            }
            Objective::Diversity { layer } => diversity(value(layer)),
            Objective::Sum(terms) => {
                let mut total: Option<Tensor> = None;
                for t in terms {
                    let term = t.objective.loss(values)? * t.weight;
                    total = Some(match total {
                        Some(sum) => sum + term,
                        None => term,
                    });
                }
                total.unwrap_or_else(|| Tensor::from(0f32))
            }
        })
    }
}

/// `value` or, with `batch`, only that image of it (Lucent's `_T_handle_batch`).
fn one_image(value: &Tensor, batch: Option<i64>, layer: &str) -> Result<Tensor> {
    let Some(b) = batch else {
        return Ok(value.shallow_clone());
    };
    let images = value.size()[0];
    ensure!(
        (0..images).contains(&b),
        "batch {b} is not an image of the render at layer `{layer}`, which has {images}; \
         raise the method's `batch` or pick an image below it"
    );
    Ok(value.narrow(0, b, 1))
}

fn pick_channel(value: &Tensor, channel: i64, layer: &str) -> Result<Tensor> {
    let channels = value.size().get(1).copied().unwrap_or(0);
    ensure!(
        value.dim() >= 2 && (0..channels).contains(&channel),
        "channel {channel} is not a channel of layer `{layer}`, whose output has shape {:?}",
        value.size()
    );
    Ok(value.select(1, channel))
}

/// The channel's value at `position` (`[B, spatial...]` to `[B]`): Lucent's `neuron`
/// objective, whose centre is `size / 2` on every axis.
fn at(unit: &Tensor, position: &Position, layer: &str) -> Result<Tensor> {
    let space = unit.size()[1..].to_vec();
    let index: Vec<i64> = match position {
        Position::At(index) => index.clone(),
        Position::Named(Centre::Centre) => space.iter().map(|&n| n / 2).collect(),
    };
    let inside =
        index.len() == space.len() && index.iter().zip(&space).all(|(&i, &n)| (0..n).contains(&i));
    ensure!(
        inside,
        "neuron {index:?} is not a position of layer `{layer}`, whose channels have shape \
         {space:?}: give one index per axis, each below that axis' size"
    );
    let mut value = unit.shallow_clone();
    for &i in index.iter().rev() {
        value = value.select(-1, i);
    }
    Ok(value)
}

/// The cosine similarity over channels of each position of `value` with `direction`
/// (torch's `CosineSimilarity(dim=1)`, eps 1e-8).
fn cosine_to(value: &Tensor, direction: &[f64], layer: &str) -> Result<Tensor> {
    let channels = value.size().get(1).copied().unwrap_or(0);
    ensure!(
        value.dim() >= 2 && direction.len() as i64 == channels,
        "the direction has {} numbers, but layer `{layer}` has {channels} channels (output \
         shape {:?}): give one number per channel",
        direction.len(),
        value.size()
    );
    let mut shape = vec![1, channels];
    shape.extend(std::iter::repeat_n(1, value.dim() - 2));
    let d = Tensor::from_slice(direction)
        .to_kind(value.kind())
        .to_device(value.device())
        .view(shape.as_slice());
    Ok(Tensor::cosine_similarity(&d, value, 1, 1e-8))
}

/// Lucent's `diversity`: each image's Gram matrix over channels, scaled to unit norm; minus
/// the sum over ordered pairs of different images of their inner products, over the batch size.
fn diversity(value: &Tensor) -> Tensor {
    let (batch, channels) = (value.size()[0], value.size()[1]);
    let flat = value.reshape([batch, channels, -1]);
    let grams = flat.matmul(&flat.transpose(1, 2));
    let norms = grams
        .square()
        .sum_dim_intlist([1i64, 2].as_slice(), true, Kind::Float)
        .sqrt()
        .clamp_min(1e-12);
    let grams = (grams / norms).reshape([batch, -1]);
    let all = grams.matmul(&grams.tr());
    // The pairs of different images: all pairs minus each image with itself.
    -(all.sum(Kind::Float) - all.diagonal(0, 0, 1).sum(Kind::Float)) / batch as f64
}
