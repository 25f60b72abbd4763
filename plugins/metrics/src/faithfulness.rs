//! Deletion and insertion (Petsiuk et al., 2018, RISE): the target score along a path that
//! removes the map's voxels from the input (deletion) or adds them to a blank one (insertion),
//! most relevant first, summarised by the area under that curve.
//!
//! - Voxels are ranked by the map's channel sum (after taking each element's absolute value when
//!   `abs`); a voxel's channels are replaced together. Exact ties keep memory order (a stable
//!   sort), so the curve is deterministic.
//! - After step k of `steps`, the first `floor(k N / steps)` of the N voxels are replaced
//!   (deletion: by `baseline`; insertion: the baseline image gets the input's values there). The
//!   curve has `steps + 1` points, from the untouched start to the fully replaced end, at x = the
//!   fraction of voxels replaced; the score is its trapezoid area over x in [0, 1], in the units
//!   of the target score as the task wrapper gives it (RISE uses class probabilities; for its
//!   numbers, export the classifier with its softmax).
//!   Deletion: lower is better (the score should fall fast); insertion: higher is better.
//! - The baseline is one number (default 0). RISE's insertion starts from a blurred copy of the
//!   image; that baseline is not offered here.
//! - The perturbed inputs are evaluated a group of copies at a time, as many as the memory budget
//!   allows.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{register_method, Attribution, Context, Method, MethodMeta, Pass};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Device, Kind, Tensor};

use crate::explained::{meta, Explained};
use crate::localisation::{check_spatial, voxel_relevance};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The attribution method whose map is scored, and its parameters.
    pub explained: Explained,
    /// Which voxels go first. Default `most_relevant_first` (Petsiuk et al.);
    /// `least_relevant_first` gives the reverse curve (the score should then hold up).
    #[serde(default)]
    pub order: Order,
    /// Number of steps; the curve has `steps + 1` points. Default 20.
    #[serde(default = "default_steps")]
    #[schemars(range(min = 1))]
    pub steps: usize,
    /// The value of a removed element (deletion), or of every element at the start
    /// (insertion). Default 0. A number only: RISE's blurred insertion baseline is not offered.
    #[serde(default)]
    pub baseline: f64,
    /// Rank voxels by the magnitude of the map (absolute values summed over channels) instead of
    /// its signed channel sum. Default false.
    #[serde(default)]
    pub abs: bool,
}

fn default_steps() -> usize {
    20
}

/// The order in which voxels are replaced.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Highest relevance first.
    #[default]
    MostRelevantFirst,
    /// Lowest relevance first.
    LeastRelevantFirst,
}

/// Which path the curve follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the input, replacing voxels by the baseline.
    Deletion,
    /// From the baseline, restoring the input's voxels.
    Insertion,
}

pub struct Deletion;

impl Method for Deletion {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        meta(
            "metrics.deletion",
            "Deletion",
            "Area under the target score as the map's most relevant voxels are replaced by a \
             baseline, step by step, per example; lower is better.",
            "Petsiuk et al., RISE: Randomized Input Sampling for Explanation of Black-box \
             Models, BMVC 2018, arXiv:1806.07421",
        )
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        run(ctx, inputs, target, p, Mode::Deletion)
    }
}

register_method!(Deletion);

pub struct Insertion;

impl Method for Insertion {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        meta(
            "metrics.insertion",
            "Insertion",
            "Area under the target score as the map's most relevant voxels are restored into a \
             baseline image, step by step, per example; higher is better.",
            "Petsiuk et al., RISE: Randomized Input Sampling for Explanation of Black-box \
             Models, BMVC 2018, arXiv:1806.07421",
        )
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        run(ctx, inputs, target, p, Mode::Insertion)
    }
}

register_method!(Insertion);

fn run(
    ctx: &Context<'_>,
    inputs: &Tensor,
    target: i64,
    p: Params,
    mode: Mode,
) -> Result<Attribution> {
    check_spatial(inputs)?;
    ensure!(p.steps >= 1, "steps is 0; give at least 1 step");
    ensure!(
        p.baseline.is_finite(),
        "baseline is {}; give a finite number",
        p.baseline
    );
    let map = p.explained.map(ctx, inputs, target)?;
    let relevance = voxel_relevance(&map, p.abs, &p.explained.method)?;
    // Copies of the whole batch, one per step.
    let per_eval = ctx.copies_per_pass(inputs, Pass::Forward);
    let groups = (p.steps + 1).div_ceil(per_eval);
    let mut done = 0;
    ctx.progress(0, groups);
    let curves = perturbation_curves(
        inputs,
        &relevance,
        p.baseline,
        p.steps,
        p.order,
        mode,
        per_eval,
        |batch| {
            ctx.check_cancelled()?;
            let scores = ctx.evaluate(batch, target)?;
            done += 1;
            ctx.progress(done, groups);
            Ok(scores)
        },
    )?;
    let area = curves.area()?;
    let per_example = Vec::<Vec<f64>>::try_from(&curves.scores.to_device(Device::Cpu))?;
    Ok(Attribution::new(area)
        .with_extra("fractions", json!(curves.fractions))
        .with_extra("curves", json!(per_example)))
}

/// The target score along the path, per example.
#[derive(Debug)]
pub struct Curves {
    /// Fraction of voxels replaced at each point, `steps + 1` values from 0 to 1.
    pub fractions: Vec<f64>,
    /// `[B, steps + 1]` f64: the target score at each point.
    pub scores: Tensor,
}

impl Curves {
    /// The trapezoid area under each curve over the fractions, `[B]` f32.
    pub fn area(&self) -> Result<Tensor> {
        let x = Tensor::from_slice(&self.fractions).to_device(self.scores.device());
        Ok(Tensor::f_trapezoid_x(&self.scores, &x, 1)?.f_to_kind(Kind::Float)?)
    }
}

/// How many voxels are replaced after each of `steps` steps: `floor(k n / steps)`.
fn step_counts(n: i64, steps: usize) -> Vec<i64> {
    let s = steps as i64;
    (0..=s).map(|k| k * n / s).collect()
}

/// The deletion or insertion curves of `inputs` (`[B, C, ...spatial]`) under the voxel relevance
/// `relevance` (`[B, ...spatial]`). `evaluate` maps a batch of perturbed inputs (`[k B, C, ...]`,
/// `k` copies of the batch one after the other, `k <= copies_per_eval`) to its target scores
/// (`k B` values).
#[allow(clippy::too_many_arguments)]
pub fn perturbation_curves(
    inputs: &Tensor,
    relevance: &Tensor,
    baseline: f64,
    steps: usize,
    order: Order,
    mode: Mode,
    copies_per_eval: usize,
    mut evaluate: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Curves> {
    let shape = inputs.size();
    ensure!(
        shape.len() >= 3 && relevance.size()[..] == [&shape[..1], &shape[2..]].concat()[..],
        "the relevance has shape {:?}, but the input {shape:?} needs [B, ...spatial]",
        relevance.size()
    );
    ensure!(steps >= 1, "steps is 0; give at least 1 step");
    let b = shape[0];
    let n = relevance.numel() as i64 / b.max(1);
    // rank[b, v]: where voxel v comes in example b's order.
    let flat = relevance.f_reshape([b, n])?;
    let descending = order == Order::MostRelevantFirst;
    let sorted = flat.f_argsort_stable(true, 1, descending)?;
    let positions = Tensor::f_arange(n, (Kind::Int64, flat.device()))?.f_expand([b, n], false)?;
    let rank = sorted.f_zeros_like()?.f_scatter(1, &sorted, &positions)?;
    let mut rank_shape = shape.clone();
    rank_shape[1] = 1;
    let rank = rank.f_reshape(rank_shape.as_slice())?;
    let blank = inputs.f_full_like(baseline)?;
    let counts = step_counts(n, steps);
    let per_eval = copies_per_eval.max(1);
    let mut columns = Vec::with_capacity(counts.len());
    for group in counts.chunks(per_eval) {
        let copies = group
            .iter()
            .map(|&replaced| {
                let covered = rank.f_lt(replaced)?;
                Ok(match mode {
                    Mode::Deletion => blank.f_where_self(&covered, inputs)?,
                    Mode::Insertion => inputs.f_where_self(&covered, &blank)?,
                })
            })
            .collect::<Result<Vec<Tensor>>>()?;
        let k = copies.len() as i64;
        let scores = evaluate(&Tensor::f_cat(&copies, 0)?)?;
        ensure!(
            scores.numel() as i64 == k * b,
            "the model returned {} scores for {} examples ({k} perturbed copies of {b}); \
             deletion and insertion need one score per example",
            scores.numel(),
            k * b
        );
        columns.push(
            scores
                .f_to_kind(Kind::Double)?
                .f_to_device(inputs.device())?
                .f_reshape([k, b])?,
        );
    }
    let scores = Tensor::f_cat(&columns, 0)?
        .f_transpose(0, 1)?
        .f_contiguous()?;
    let fractions = counts.iter().map(|&c| c as f64 / n as f64).collect();
    Ok(Curves { fractions, scores })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).reshape(shape)
    }

    fn rows(t: &Tensor) -> Vec<Vec<f64>> {
        Vec::<Vec<f64>>::try_from(&t.to_kind(Kind::Double)).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    /// A toy "model" on `[k, C, ...]`: the sum of each example's elements.
    fn sum_model(batch: &Tensor) -> Result<Tensor> {
        let k = batch.size()[0];
        Ok(batch
            .reshape([k, -1])
            .sum_dim_intlist(1, false, Kind::Double))
    }

    /// Input `[1, 1, 4]` = [1, 2, 3, 4]; relevance ranks voxel 3, then 1, 0, 2.
    fn toy() -> (Tensor, Tensor) {
        (
            t(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 4]),
            t(&[0.5, 0.7, 0.1, 0.9], &[1, 4]),
        )
    }

    #[test]
    fn deletion_curve_of_a_sum_model() {
        let (x, r) = toy();
        let c = perturbation_curves(
            &x,
            &r,
            0.0,
            4,
            Order::MostRelevantFirst,
            Mode::Deletion,
            1,
            sum_model,
        )
        .unwrap();
        close(&c.fractions, &[0.0, 0.25, 0.5, 0.75, 1.0]);
        // 10, minus 4, minus 2, minus 1, minus 3.
        close(&rows(&c.scores)[0], &[10.0, 6.0, 4.0, 3.0, 0.0]);
        // Trapezoids of width 1/4: (16 + 10 + 7 + 3) / 8.
        close(&rows(&c.area().unwrap().unsqueeze(0))[0], &[4.5]);
    }

    #[test]
    fn insertion_and_the_reverse_order() {
        let (x, r) = toy();
        let c = perturbation_curves(
            &x,
            &r,
            1.0,
            4,
            Order::MostRelevantFirst,
            Mode::Insertion,
            2,
            sum_model,
        )
        .unwrap();
        // From four 1s: restore 4, then 2, then 1 (no change), then 3.
        close(&rows(&c.scores)[0], &[4.0, 7.0, 8.0, 8.0, 10.0]);
        let c = perturbation_curves(
            &x,
            &r,
            0.0,
            4,
            Order::LeastRelevantFirst,
            Mode::Deletion,
            3,
            sum_model,
        )
        .unwrap();
        // Remove 3, then 1, then 2, then 4.
        close(&rows(&c.scores)[0], &[10.0, 7.0, 6.0, 4.0, 0.0]);
    }

    #[test]
    fn uneven_steps_channels_and_batches() {
        // Two examples [2, 2, 3] (two channels replaced together), 2 steps over 3 voxels:
        // 0, 1 (floor 3/2), 3 voxels.
        let x = t(
            &[
                1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
            ],
            &[2, 2, 3],
        );
        let r = t(&[0.0, 0.0, 1.0, 3.0, 2.0, 1.0], &[2, 3]);
        let mut calls = 0;
        let c = perturbation_curves(
            &x,
            &r,
            0.0,
            2,
            Order::MostRelevantFirst,
            Mode::Deletion,
            2,
            |b| {
                calls += 1;
                sum_model(b)
            },
        )
        .unwrap();
        assert_eq!(calls, 2, "3 points in groups of 2");
        close(&c.fractions, &[0.0, 1.0 / 3.0, 1.0]);
        let s = rows(&c.scores);
        close(&s[0], &[66.0, 33.0, 0.0]);
        close(&s[1], &[6.0, 4.0, 0.0]);
        // Areas: (66 + 33) / 2 / 3 + (33 + 0) / 2 * 2 / 3 and (6 + 4) / 6 + 4 / 3.
        close(&rows(&c.area().unwrap().unsqueeze(0))[0], &[27.5, 3.0]);
    }

    #[test]
    fn ties_keep_memory_order_and_batching_does_not_change_the_curve() {
        let x = t(&[1.0, 2.0, 4.0, 8.0], &[1, 1, 2, 2]);
        let r = t(&[1.0, 1.0, 1.0, 1.0], &[1, 2, 2]);
        let one = perturbation_curves(
            &x,
            &r,
            0.0,
            4,
            Order::MostRelevantFirst,
            Mode::Deletion,
            1,
            sum_model,
        )
        .unwrap();
        close(&rows(&one.scores)[0], &[15.0, 14.0, 12.0, 8.0, 0.0]);
        let all = perturbation_curves(
            &x,
            &r,
            0.0,
            4,
            Order::MostRelevantFirst,
            Mode::Deletion,
            100,
            sum_model,
        )
        .unwrap();
        close(&rows(&all.scores)[0], &rows(&one.scores)[0]);
    }

    #[test]
    fn a_model_with_the_wrong_number_of_scores_is_an_error() {
        let (x, r) = toy();
        let e = perturbation_curves(
            &x,
            &r,
            0.0,
            2,
            Order::MostRelevantFirst,
            Mode::Deletion,
            3,
            |_| Ok(Tensor::zeros([1], (Kind::Float, Device::Cpu))),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("one score per example"), "{e}");
    }

    #[test]
    fn step_counts_reach_every_voxel() {
        assert_eq!(step_counts(10, 4), vec![0, 2, 5, 7, 10]);
        assert_eq!(step_counts(3, 5), vec![0, 0, 1, 1, 2, 3]);
    }
}
