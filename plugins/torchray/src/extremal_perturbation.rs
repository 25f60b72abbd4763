//! Extremal perturbation (Fong, Patrick and Vedaldi, "Understanding Deep Networks via Extremal
//! Perturbations and Smooth Masks", ICCV 2019): for each area `a`, the smooth mask of that area
//! that keeps the target's score highest (`preserve`: the input kept where the mask is 1 and
//! perturbed elsewhere), or lowers it most when deleted (`delete`), or both (`dual`). Found by
//! gradient descent on `-reward + lambda * ||sort(m) - r_a||^2`, `r_a` the sorted mask of
//! area `a` (the area constraint of the paper), with Adam. The mask is a grid of parameters
//! every `step` pixels, smoothed by a Gaussian of `sigma` pixels and upsampled, so it has no
//! detail finer than that. `[B, A, ...spatial]`: one channel per area. 2D and 3D alike.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tch::{Kind, Tensor};

use crate::perturbation::{PerturbationKind, Pyramid};
use crate::saliency::blur;

/// Which mask the optimisation looks for.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The region that alone keeps the target's score (TorchRay's default).
    #[default]
    Preserve,
    /// The region whose deletion lowers the score most.
    Delete,
    /// Both at once.
    Dual,
}

/// What the optimisation rewards.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// The target's score (TorchRay's `simple_reward`).
    #[default]
    Simple,
    /// The target's score less the largest other score (TorchRay's `contrastive_reward`).
    Contrastive,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The areas, fractions of the input in (0, 1): one mask each (TorchRay's default [0.1]).
    #[serde(default = "default_areas")]
    #[schemars(length(min = 1))]
    pub areas: Vec<f64>,
    /// What replaces the input where the mask is 0: `blur` or `fade` (to zero).
    #[serde(default)]
    pub perturbation: PerturbationKind,
    /// `preserve`, `delete` or `dual`.
    #[serde(default)]
    pub variant: Variant,
    /// Optimisation steps (TorchRay's default 800).
    #[serde(default = "default_max_iter")]
    #[schemars(range(min = 1))]
    pub max_iter: usize,
    /// Levels of the blur pyramid (TorchRay's default 8).
    #[serde(default = "default_num_levels")]
    #[schemars(range(min = 2))]
    pub num_levels: i64,
    /// Pixels between the mask's parameters (TorchRay's default 7).
    #[serde(default = "default_step")]
    #[schemars(range(min = 1))]
    pub step: i64,
    /// Standard deviation in pixels of the Gaussian that smooths the mask (TorchRay's
    /// default 21).
    #[serde(default = "default_sigma")]
    #[schemars(range(min = 0.0))]
    pub sigma: f64,
    /// Shift the perturbed input by up to one pixel at random each step, against masks that
    /// exploit the network's aliasing (TorchRay's default true).
    #[serde(default = "default_true")]
    pub jitter: bool,
    /// A final Gaussian blur of the masks, its standard deviation this fraction of the input's
    /// largest side (0: none).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub smooth: f64,
    /// `simple` (the target's score) or `contrastive` (less the best other class).
    #[serde(default)]
    pub reward_func: Reward,
    /// The area constraint's weight (the paper's lambda, 300).
    #[serde(default = "default_area_weight")]
    #[schemars(range(min = 0.0))]
    pub area_weight: f64,
    /// Adam's learning rate on the mask parameters.
    #[serde(default = "default_learning_rate")]
    #[schemars(range(min = 0.0))]
    pub learning_rate: f64,
    /// Divide the reward by its value on the unperturbed input, so that the area term weighs
    /// the same whatever the scores' scale: for segmentation wrappers, whose scores sum
    /// thousands of voxels and would drown the area constraint. Default false (TorchRay's).
    #[serde(default)]
    pub relative_reward: bool,
    /// The strongest blur of the pyramid, in pixels (TorchRay's default 20).
    #[serde(default = "default_max_blur")]
    #[schemars(range(min = 0.0))]
    pub max_blur: f64,
}

fn default_areas() -> Vec<f64> {
    vec![0.1]
}
fn default_max_iter() -> usize {
    800
}
fn default_num_levels() -> i64 {
    8
}
fn default_step() -> i64 {
    7
}
fn default_sigma() -> f64 {
    21.0
}
fn default_true() -> bool {
    true
}
fn default_area_weight() -> f64 {
    300.0
}
fn default_learning_rate() -> f64 {
    0.05
}
fn default_max_blur() -> f64 {
    20.0
}

pub struct ExtremalPerturbation;

impl Method for ExtremalPerturbation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "torchray.extremal_perturbation",
            title: "Extremal perturbation (TorchRay)",
            summary: "For each area, the smooth mask of that area that best keeps (or, deleted, \
                      most lowers) the target's score, found by gradient descent.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                ..Needs::default()
            },
            reference: "Fong, Patrick and Vedaldi, Understanding Deep Networks via Extremal \
                        Perturbations and Smooth Masks, ICCV 2019; TorchRay \
                        torchray.attribution.extremal_perturbation",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        for (i, &a) in p.areas.iter().enumerate() {
            ensure!(
                a > 0.0 && a < 1.0,
                "areas[{i}] is {a}, but an area is a fraction of the input in (0, 1), e.g. 0.1"
            );
        }
        let spatial = inputs.size()[2..].to_vec();
        ensure!((2..=3).contains(&spatial.len()), "extremal perturbation takes 2D or 3D inputs `[B, C, ...spatial]`, but the input has shape {:?}", inputs.size());
        let mut rng = StdRng::seed_from_u64(ctx.seed());
        let mut masks = Vec::new();
        let mut rewards = Vec::new();
        let total = inputs.size()[0] as usize * p.max_iter;
        for b in 0..inputs.size()[0] {
            let x = inputs.narrow(0, b, 1);
            let (m, reward) = optimise(
                ctx,
                &x,
                target,
                &p,
                &mut rng,
                b as usize * p.max_iter,
                total,
            )?;
            masks.push(
                m.view(
                    [1, -1]
                        .iter()
                        .chain(&spatial)
                        .copied()
                        .collect::<Vec<_>>()
                        .as_slice(),
                ),
            );
            rewards.push(reward);
        }
        let map = Tensor::cat(&masks, 0);
        let side = spatial.iter().copied().max().unwrap_or(1) as f64;
        let map = if p.smooth > 0.0 {
            blur(&map, p.smooth * side)?
        } else {
            map
        };
        let dims: Vec<i64> = (2..2 + spatial.len() as i64).collect();
        let areas = Vec::<f64>::try_from(
            map.mean_dim(dims.as_slice(), false, Kind::Double)
                .flatten(0, -1),
        )?;
        Ok(Attribution::new(map.to_kind(inputs.kind()))
            .with_extra("reward", json!(rewards))
            .with_extra("area", json!(areas)))
    }
}

register_method!(ExtremalPerturbation);

/// The masks `[A, 1, ...]` of one example and the reward each reached.
fn optimise(
    ctx: &Context<'_>,
    x: &Tensor,
    target: i64,
    p: &Params,
    rng: &mut StdRng,
    done: usize,
    total: usize,
) -> Result<(Tensor, Vec<f64>)> {
    let spatial = x.size()[2..].to_vec();
    let n_areas = p.areas.len() as i64;
    let grid: Vec<i64> = spatial
        .iter()
        .map(|&s| (s + p.step - 1) / p.step + 1)
        .collect();
    let shape: Vec<i64> = [n_areas, 1].iter().chain(&grid).copied().collect();
    let pyramid = Pyramid::new(x, p.perturbation, p.num_levels, p.max_blur)?;
    let reference = area_reference(&p.areas, spatial.iter().product(), x.device());
    let mut params = Tensor::full(shape.as_slice(), 0.5, (Kind::Float, x.device()));
    let scale = match p.relative_reward {
        true => {
            1.0 / tch::no_grad(|| rewards(ctx, x, target, p.reward_func))?
                .double_value(&[0])
                .abs()
                .max(1e-12)
        }
        false => 1.0,
    };
    let mut adam = Adam::new(&params);
    for step in 0..p.max_iter {
        if step % 10 == 0 {
            ctx.check_cancelled()?;
            ctx.progress(done + step, total);
        }
        let leaf = params.detach().set_requires_grad(true);
        let mask = smooth_mask(&leaf, &spatial, p.sigma, p.step)?;
        let energy = energy(
            ctx,
            &pyramid,
            &mask,
            target,
            p,
            jitter(rng, p.jitter, spatial.len()),
        )? * scale;
        let sorted = mask.flatten(1, -1).sort(1, false).0;
        let area_loss = (sorted - &reference)
            .square()
            .mean_dim(1, false, Kind::Float);
        let loss = (energy + area_loss * p.area_weight).sum(Kind::Float);
        let grad = Tensor::f_run_backward(&[loss], &[&leaf], false, false)?.remove(0);
        params = adam.step(&params, &grad, p.learning_rate).clamp(0.0, 1.0);
    }
    let mask = tch::no_grad(|| smooth_mask(&params, &spatial, p.sigma, p.step))?;
    let reward = tch::no_grad(|| rewards(ctx, &pyramid.apply(&mask), target, p.reward_func))?;
    Ok((mask, Vec::<f64>::try_from(reward.to_kind(Kind::Double))?))
}

/// The parameters `[A, 1, ...grid]` as masks on the input's grid: smoothed on the grid by a
/// Gaussian of `sigma` pixels (`sigma / step` grid cells), then upsampled (bilinear or
/// trilinear, corners aligned so that the grid spans the input) and clamped to [0, 1].
/// Smoothing before upsampling costs the grid's size, not the input's: on a 224 px image
/// with the defaults, a 33 x 33 blur instead of a 224 x 224 one with a 169-tap kernel, which
/// took a quarter of each step's time.
fn smooth_mask(params: &Tensor, spatial: &[i64], sigma: f64, step: i64) -> Result<Tensor> {
    let smooth = if sigma > 0.0 {
        blur(params, sigma / step as f64)?
    } else {
        params.shallow_clone()
    };
    let up = if spatial.len() == 2 {
        smooth.f_upsample_bilinear2d(spatial, true, None, None)?
    } else {
        smooth.f_upsample_trilinear3d(spatial, true, None, None, None)?
    };
    Ok(up.clamp(0.0, 1.0))
}

/// For each area: the sorted values of a mask of exactly that area, `[A, n]`.
fn area_reference(areas: &[f64], n: i64, device: tch::Device) -> Tensor {
    let rows: Vec<Tensor> = areas
        .iter()
        .map(|&a| {
            let ones = (a * n as f64).round() as i64;
            Tensor::cat(
                &[
                    Tensor::zeros([n - ones], (Kind::Float, device)),
                    Tensor::ones([ones], (Kind::Float, device)),
                ],
                0,
            )
        })
        .collect();
    Tensor::stack(&rows, 0)
}

/// The pixels to shift the perturbed input by this step, per spatial dimension.
fn jitter(rng: &mut StdRng, on: bool, dims: usize) -> Vec<i64> {
    (0..dims)
        .map(|_| if on { rng.random_range(0..2) } else { 0 })
        .collect()
}

/// `[A]`: what the optimisation minimises for each mask, before the area term.
fn energy(
    ctx: &Context<'_>,
    pyramid: &Pyramid,
    mask: &Tensor,
    target: i64,
    p: &Params,
    shift: Vec<i64>,
) -> Result<Tensor> {
    let shifted = |t: Tensor| {
        let dims: Vec<i64> = (2..2 + shift.len() as i64).collect();
        t.roll(shift.as_slice(), dims.as_slice())
    };
    let preserve = || -> Result<Tensor> {
        Ok(-rewards(
            ctx,
            &shifted(pyramid.apply(mask)),
            target,
            p.reward_func,
        )?)
    };
    let delete = || -> Result<Tensor> {
        rewards(
            ctx,
            &shifted(pyramid.apply(&(1.0 - mask))),
            target,
            p.reward_func,
        )
    };
    Ok(match p.variant {
        Variant::Preserve => preserve()?,
        Variant::Delete => delete()?,
        Variant::Dual => preserve()? + delete()?,
    })
}

/// The reward of each perturbed input `[A, C, ...]`, `[A]`.
fn rewards(ctx: &Context<'_>, perturbed: &Tensor, target: i64, reward: Reward) -> Result<Tensor> {
    let scores = ctx.forward(perturbed)?.to_kind(Kind::Float);
    let own = scores.select(1, target);
    Ok(match reward {
        Reward::Simple => own,
        Reward::Contrastive => {
            let others = scores.index_fill(
                1,
                &Tensor::from_slice(&[target]).to_device(scores.device()),
                f64::NEG_INFINITY,
            );
            own - others.amax(1, false)
        }
    })
}

/// Adam (Kingma and Ba, 2015) with its usual constants, on one tensor.
struct Adam {
    first: Tensor,
    second: Tensor,
    steps: i32,
}

impl Adam {
    fn new(like: &Tensor) -> Self {
        Adam {
            first: like.zeros_like(),
            second: like.zeros_like(),
            steps: 0,
        }
    }

    fn step(&mut self, params: &Tensor, grad: &Tensor, rate: f64) -> Tensor {
        const BETA1: f64 = 0.9;
        const BETA2: f64 = 0.999;
        self.steps += 1;
        self.first = &self.first * BETA1 + grad * (1.0 - BETA1);
        self.second = &self.second * BETA2 + grad.square() * (1.0 - BETA2);
        let first = &self.first / (1.0 - BETA1.powi(self.steps));
        let second = &self.second / (1.0 - BETA2.powi(self.steps));
        params - first / (second.sqrt() + 1e-8) * rate
    }
}
