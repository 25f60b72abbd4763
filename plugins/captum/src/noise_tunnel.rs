//! NoiseTunnel (SmoothGrad, SmoothGrad², VarGrad): a gradient method averaged over noisy copies
//! of the input, as Captum's `NoiseTunnel` wraps any attribution method.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{accumulation, Context, Pass};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How the attributions of the noisy copies are combined.
// Serialize lets schemars write the default into the schema (it serialises the value).
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum NtType {
    /// Mean of the attributions (Smilkov et al., 2017).
    #[default]
    Smoothgrad,
    /// Mean of the squared attributions.
    SmoothgradSq,
    /// Variance of the attributions (Adebayo et al., 2018).
    Vargrad,
}

/// Captum's `NoiseTunnel.attribute` arguments, with its defaults.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct NoiseTunnel {
    #[serde(default)]
    pub nt_type: NtType,
    /// Number of noisy copies of each input.
    #[serde(default = "default_nt_samples")]
    #[schemars(range(min = 1))]
    pub nt_samples: usize,
    /// Noisy copies attributed together; default: as many as the memory budget allows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub nt_samples_batch_size: Option<usize>,
    /// Standard deviation of the Gaussian noise, in input units.
    #[serde(default = "default_stdevs")]
    #[schemars(range(min = 0.0))]
    pub stdevs: f64,
}

fn default_nt_samples() -> usize {
    5
}

fn default_stdevs() -> f64 {
    1.0
}

/// `attribute(inputs)`, or its noise-tunnel aggregate when `nt` is given. `attribute` must
/// treat the examples of a batch independently (all gradient methods do), so that noisy copies
/// can be attributed in batches.
pub fn with_noise_tunnel(
    ctx: &Context<'_>,
    inputs: &Tensor,
    nt: Option<&NoiseTunnel>,
    mut attribute: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let Some(nt) = nt else {
        return attribute(inputs);
    };
    ensure!(
        nt.nt_samples >= 1,
        "noise_tunnel.nt_samples must be at least 1"
    );
    let batch = inputs.size()[0];
    // Each noisy copy of the batch is attributed by a gradient method.
    let chunk = nt
        .nt_samples_batch_size
        .unwrap_or_else(|| ctx.copies_per_pass(inputs, Pass::Gradient))
        .max(1);
    let mut rng = StdRng::seed_from_u64(ctx.seed());
    let (mut sum, mut sum_sq) = (inputs.zeros_like(), inputs.zeros_like());
    let mut done = 0;
    while done < nt.nt_samples {
        ctx.check_cancelled()?;
        let k = chunk.min(nt.nt_samples - done);
        let noisy = noisy_copies(inputs, k as i64, nt.stdevs, &mut rng);
        let attr = attribute(&noisy)?.detach();
        let shape: Vec<i64> = [batch, k as i64]
            .iter()
            .chain(&inputs.size()[1..])
            .copied()
            .collect();
        let attr = attr.view(shape.as_slice());
        sum += attr.sum_dim_intlist(1, false, accumulation(attr.kind()));
        sum_sq += attr
            .square()
            .sum_dim_intlist(1, false, accumulation(attr.kind()));
        done += k;
        ctx.progress(done, nt.nt_samples);
    }
    let n = nt.nt_samples as f64;
    let (mean, mean_sq) = (sum / n, sum_sq / n);
    Ok(match nt.nt_type {
        NtType::Smoothgrad => mean,
        NtType::SmoothgradSq => mean_sq,
        NtType::Vargrad => mean_sq - mean.square(),
    })
}

/// `[B * k, ...]`: each example repeated `k` times in a row, plus N(0, stdev²) noise.
fn noisy_copies(inputs: &Tensor, k: i64, stdev: f64, rng: &mut StdRng) -> Tensor {
    let repeated = inputs.repeat_interleave_self_int(k, 0, None);
    let normal = Normal::new(0.0f32, stdev as f32).expect("stdev is finite and >= 0");
    let noise: Vec<f32> = (0..repeated.numel()).map(|_| normal.sample(rng)).collect();
    let noise = Tensor::from_slice(&noise)
        .view(repeated.size().as_slice())
        .to_device(inputs.device());
    repeated + noise.to_kind(inputs.kind())
}
