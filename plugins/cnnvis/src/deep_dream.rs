//! DeepDream (Mordvintsev, Olah & Tyka, Inceptionism, 2015, and their deepdream notebook):
//! gradient ascent on the input to amplify what a layer sees, `1/2 |A|^2` of the whole layer
//! or of one filter. Octave by octave from the smallest (the input shrunk by `octave_scale`
//! per octave), each step rolls the image by a random shift of up to `jitter` positions per
//! axis, moves it by `lr * g / mean|g|` (the normalised gradient), rolls it back and clips it
//! to the input's range; the detail an octave adds is resized up to the next. The model sees
//! each octave resampled to the input's size (an exported graph takes one size, and featvis
//! does the same), so a smaller octave shapes coarser detail. Volumes are resampled
//! trilinearly and jittered along all three axes. One image per example, `[B, C, ...spatial]`,
//! on the input's grid.

use anyhow::{Context as _, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::optimise::{at_least_one, check_filter, layer_value, positive, range, resize};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer (module path; `--layer` sets it) whose activation is amplified.
    pub layer: String,
    /// Amplify only this filter (a channel of the layer's output); default: the whole layer.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub filter: Option<i64>,
    /// Gradient-ascent steps per octave (the notebook's `iter_n`).
    #[serde(default = "default_steps")]
    #[schemars(range(min = 1))]
    pub steps: usize,
    /// The step size, in units of the mean absolute gradient (the notebook's `step_size`).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// How many scales to dream at, the input's size the last (the notebook's `octave_n`).
    #[serde(default = "default_octaves")]
    #[schemars(range(min = 1))]
    pub octaves: usize,
    /// The ratio of one octave's size to the next smaller one's.
    #[serde(default = "default_octave_scale")]
    pub octave_scale: f64,
    /// The largest random shift per axis before each step, in positions (0: none).
    #[serde(default = "default_jitter")]
    pub jitter: i64,
}

fn default_steps() -> usize {
    10
}
fn default_lr() -> f64 {
    1.5
}
fn default_octaves() -> usize {
    4
}
fn default_octave_scale() -> f64 {
    1.4
}
fn default_jitter() -> i64 {
    32
}

pub struct DeepDream;

impl Method for DeepDream {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "cnnvis.deep_dream",
            title: "DeepDream",
            summary: "The input changed by gradient ascent, octave by octave, to amplify what a \
                      layer (or one of its filters) responds to.",
            kind: MethodKind::Explanation,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Mordvintsev, Olah & Tyka, Inceptionism: Going Deeper into Neural \
                        Networks, Google Research blog, 2015; the deepdream notebook, \
                        https://github.com/google/deepdream",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        at_least_one("steps", p.steps)?;
        at_least_one("octaves", p.octaves)?;
        positive("lr", p.lr)?;
        positive("octave_scale", p.octave_scale)?;
        anyhow::ensure!(
            p.jitter >= 0,
            "jitter must be at least 0 (it is {})",
            p.jitter
        );
        let first = inputs.narrow(0, 0, 1).to_kind(Kind::Float);
        if let Some(filter) = p.filter {
            let value = tch::no_grad(|| layer_value(ctx, &first, &p.layer))?;
            check_filter(&value, filter, &p.layer)?;
        }
        tch::manual_seed(ctx.seed() as i64);
        let mut dreams = Vec::new();
        for b in 0..inputs.size()[0] {
            let x = inputs.narrow(0, b, 1).to_kind(Kind::Float);
            dreams.push(Dream { ctx, p: &p }.run(&x)?);
        }
        Ok(Attribution::new(
            Tensor::cat(&dreams, 0).to_kind(inputs.kind()),
        ))
    }
}

register_method!(DeepDream);

/// The spatial size of each octave, smallest first; the last is `spatial` itself.
fn octave_sizes(spatial: &[i64], octaves: usize, scale: f64) -> Vec<Vec<i64>> {
    (0..octaves as i32)
        .rev()
        .map(|k| {
            spatial
                .iter()
                .map(|&s| ((s as f64 / scale.powi(k) + 0.5).floor() as i64).max(1))
                .collect()
        })
        .collect()
}

struct Dream<'a, 'h> {
    ctx: &'a Context<'h>,
    p: &'a Params,
}

impl Dream<'_, '_> {
    /// The dream of one example `x` (`[1, ...]`).
    fn run(&self, x: &Tensor) -> Result<Tensor> {
        let spatial = x.size()[2..].to_vec();
        let sizes = octave_sizes(&spatial, self.p.octaves, self.p.octave_scale);
        let total = sizes.len() * self.p.steps;
        let mut detail: Option<Tensor> = None;
        let mut image = x.shallow_clone();
        for (octave, size) in sizes.iter().enumerate() {
            let base = if *size == spatial {
                x.shallow_clone()
            } else {
                resize(x, size)?
            };
            let added = match &detail {
                None => base.zeros_like(),
                Some(d) => resize(d, size)?,
            };
            image = &base + added;
            for step in 0..self.p.steps {
                self.ctx.check_cancelled()?;
                image = self.step(&image, x).with_context(|| {
                    format!("octave {} of {} (size {size:?})", octave + 1, sizes.len())
                })?;
                self.ctx.progress(octave * self.p.steps + step + 1, total);
            }
            detail = Some(&image - &base);
        }
        Ok(image.detach())
    }

    /// One jittered, normalised gradient-ascent step on `image`, clipped to `x`'s range.
    fn step(&self, image: &Tensor, x: &Tensor) -> Result<Tensor> {
        let axes: Vec<i64> = (2..image.dim() as i64).collect();
        let j = self.p.jitter;
        let shift: Vec<i64> = Vec::try_from(Tensor::randint_low(
            -j,
            j + 1,
            [axes.len() as i64],
            (Kind::Int64, tch::Device::Cpu),
        ))?;
        let rolled = image.roll(&shift, &axes).detach().set_requires_grad(true);
        let seen = if rolled.size() == x.size() {
            rolled.shallow_clone()
        } else {
            resize(&rolled, &x.size()[2..])?
        };
        let mut value = layer_value(self.ctx, &seen, &self.p.layer)?;
        if let Some(filter) = self.p.filter {
            value = value.select(1, filter);
        }
        let objective = value.square().sum(Kind::Float) * 0.5;
        let grad = Tensor::f_run_backward(&[objective], &[&rolled], false, false)?.remove(0);
        let moved = tch::no_grad(|| {
            let scale = grad.abs().mean(Kind::Float) + 1e-8;
            rolled.detach() + &grad * self.p.lr / scale
        });
        let back: Vec<i64> = shift.iter().map(|s| -s).collect();
        let (lo, hi) = range(x);
        Ok(moved.roll(&back, &axes).clamp(lo, hi))
    }
}
