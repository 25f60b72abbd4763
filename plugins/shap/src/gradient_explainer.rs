//! shap's GradientExplainer for PyTorch (expected gradients: Erion et al., 2019; Lundberg and
//! Lee, 2017), as shap 0.51 computes it: for each of `nsamples` samples a background example
//! `r` and a coefficient `t ~ U[0, 1)` are drawn, the gradient of the target score is taken at
//! `t x + (1 - t) r`, and the attribution is the mean of `gradient * (x - r)`. With
//! `local_smoothing`, Gaussian noise of that deviation is added to `x` in each sample (in the
//! point and in `x - r`, as shap does). The draws of `r` and `t` are numpy's after
//! `np.random.seed(rseed)`, in shap's order (examples one after another), so that the map is
//! shap's own for the same `rseed`; the noise comes from another stream (shap's comes from
//! torch's unseeded generator, which cannot be repeated). Gradients run in batches from the
//! memory budget, with progress and cancellation between them; the map does not depend on
//! the batch size.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Pass,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::background;
use esegeta_plugin_api::numpy_random::RandomState;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A tensor file (npy, NIfTI) of N reference examples `[N, ...]`, each shaped like one
    /// input example (shap's `data`), from which each sample draws one.
    pub background: String,
    /// Samples (gradient evaluations) per input example (shap's default 200).
    #[serde(default = "default_nsamples")]
    #[schemars(range(min = 1))]
    pub nsamples: usize,
    /// Standard deviation of Gaussian noise added to the input in each sample (shap's default
    /// 0, none).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub local_smoothing: f64,
    /// Seed of numpy's generator for the background draws and path coefficients: the same
    /// `rseed` gives shap's own samples, so the same map. Default: the run's seed (`--seed`),
    /// its low 32 bits (numpy seeds take 0..2^32-1).
    #[serde(default)]
    pub rseed: Option<u32>,
    /// Samples whose gradients are taken in one pass. Default: as many as the memory budget
    /// allows (shap's is 50; the map is the same).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_size: Option<usize>,
}

fn default_nsamples() -> usize {
    200
}

pub struct GradientExplainer;

impl Method for GradientExplainer {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "shap.gradient_explainer",
            title: "GradientExplainer (shap)",
            summary: "Expected gradients: the mean of gradient times (input - reference) at \
                      random points between the input and random background examples; \
                      shap's GradientExplainer, with its own random draws.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                ..Needs::default()
            },
            reference: "Erion et al., Improving performance of deep learning models with \
                        axiomatic attribution priors and expected gradients, Nature Machine \
                        Intelligence 2021; Lundberg and Lee, NeurIPS 2017; \
                        shap.GradientExplainer",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let data = background::load(ctx, &p.background, inputs, "GradientExplainer")?;
        let n_data = data.size()[0] as u32;
        let rseed = p.rseed.unwrap_or(ctx.seed() as u32);
        let mut draws = RandomState::new(rseed);
        let mut noise_rng = StdRng::seed_from_u64(u64::from(rseed) ^ 0x5ca1_ab1e);
        let per_pass = p
            .batch_size
            .unwrap_or_else(|| ctx.examples_per_pass(&inputs.narrow(0, 0, 1), Pass::Gradient));
        let batch = inputs.size()[0];
        let total = batch as usize * p.nsamples;
        let mut maps = Vec::with_capacity(batch as usize);
        for j in 0..batch {
            let x = inputs.narrow(0, j, 1);
            // shap draws every sample of an example before its gradients.
            let samples: Vec<(i64, f64)> = (0..p.nsamples)
                .map(|_| {
                    let r = draws.randint(n_data as u64) as i64;
                    (r, draws.uniform())
                })
                .collect();
            let mut sum = x.zeros_like().to_kind(Kind::Double);
            for (chunk_index, chunk) in samples.chunks(per_pass).enumerate() {
                ctx.check_cancelled()?;
                let picks: Vec<i64> = chunk.iter().map(|s| s.0).collect();
                let refs =
                    data.index_select(0, &Tensor::from_slice(&picks).to_device(data.device()));
                let xs = if p.local_smoothing > 0.0 {
                    &x + gaussian(&mut noise_rng, &refs, p.local_smoothing)?
                } else {
                    x.expand_as(&refs).contiguous()
                };
                // shap's `t * x + (1 - t) * r`, each coefficient rounded to float32 as torch
                // rounds a Python scalar for a float32 tensor.
                let t = coefficients(chunk.iter().map(|s| s.1), &refs);
                let one_minus_t = coefficients(chunk.iter().map(|s| 1.0 - s.1), &refs);
                let points = &xs * &t + &refs * &one_minus_t;
                let grads = ctx.gradient(&points, target)?;
                sum += (grads.to_kind(Kind::Double) * (&xs - &refs).to_kind(Kind::Double))
                    .sum_dim_intlist(0, true, Kind::Double);
                let done = j as usize * p.nsamples + chunk_index * per_pass + chunk.len();
                ctx.progress(done, total);
            }
            maps.push(sum / p.nsamples as f64);
        }
        Ok(Attribution::new(
            Tensor::cat(&maps, 0).to_kind(inputs.kind()),
        ))
    }
}

register_method!(GradientExplainer);

/// One coefficient per sample, shaped `[n, 1, ...]` to scale examples like `like`'s.
fn coefficients(values: impl Iterator<Item = f64>, like: &Tensor) -> Tensor {
    let values: Vec<f32> = values.map(|v| v as f32).collect();
    let mut shape = vec![1i64; like.dim()];
    shape[0] = values.len() as i64;
    Tensor::from_slice(&values)
        .view(shape.as_slice())
        .to_kind(like.kind())
        .to_device(like.device())
}

/// Gaussian noise of deviation `std`, shaped like `like`.
fn gaussian(rng: &mut StdRng, like: &Tensor, std: f64) -> Result<Tensor> {
    let normal = Normal::new(0.0f32, std as f32)?;
    let values: Vec<f32> = (0..like.numel()).map(|_| normal.sample(rng)).collect();
    Ok(Tensor::from_slice(&values)
        .view(like.size().as_slice())
        .to_kind(like.kind())
        .to_device(like.device()))
}
