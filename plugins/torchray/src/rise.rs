//! RISE (Petsiuk, Das and Saenko, BMVC 2018): the input is multiplied by N random smooth masks
//! and the map is the average of the masks weighted by the target's score on each masked
//! input, `S = sum_i s(f(x * M_i)) M_i / N`, `[B, 1, ...spatial]`, with `s` the sigmoid as in
//! TorchRay (whose normalisation is 1/N, not the paper's 1/(N p)) or the raw score. Masks are a grid of
//! `num_cells` cells per dimension, each kept with probability `p`, upsampled (bilinear, or
//! trilinear in 3D) to `(num_cells + 1)` cell widths and cropped at a random shift, so that
//! the kept regions fall anywhere; or the masks of a file (`filter_masks`), which makes the
//! map a deterministic function of them. Masks are made and evaluated in batches sized from
//! the memory budget, with progress and cancellation between batches.

use anyhow::{bail, ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, Pass,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Number of random masks N (TorchRay's default 8000). Ignored with `filter_masks`.
    #[serde(default = "default_num_masks")]
    #[schemars(range(min = 1))]
    pub num_masks: usize,
    /// Cells per spatial dimension of each mask's random grid (TorchRay's default 7).
    #[serde(default = "default_num_cells")]
    #[schemars(range(min = 1))]
    pub num_cells: i64,
    /// Probability that a cell is kept (TorchRay's default 0.5).
    #[serde(default = "default_p")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub p: f64,
    /// Masked inputs evaluated in one forward pass. Default: as many as the memory budget
    /// allows (TorchRay's is 32; the map is the same).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_size: Option<usize>,
    /// Seed of the masks. Default: the run's seed (`--seed`).
    #[serde(default)]
    pub seed: Option<u64>,
    /// A file (npy or NIfTI) of masks `[N, 1, ...spatial]` on the input's grid to use instead
    /// of random ones; the map is then a deterministic function of them.
    #[serde(default)]
    pub filter_masks: Option<String>,
    /// How a masked input's score weighs its mask: `sigmoid` of the score (TorchRay's; for
    /// classifiers' logits) or `raw` (for segmentation wrappers, whose scores are sums over
    /// many pixels and would saturate a sigmoid).
    #[serde(default)]
    pub score: Score,
}

/// The weight of a mask, from the target's score on the input masked by it.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum Score {
    #[default]
    Sigmoid,
    Raw,
}

fn default_num_masks() -> usize {
    8000
}
fn default_num_cells() -> i64 {
    7
}
fn default_p() -> f64 {
    0.5
}

pub struct Rise;

impl Method for Rise {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "torchray.rise",
            title: "RISE (TorchRay)",
            summary: "The average of random smooth masks, each weighted by the target's score \
                      on the input multiplied by it; forward passes only.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Petsiuk, Das and Saenko, RISE: Randomized Input Sampling for \
                        Explanation of Black-box Models, BMVC 2018; TorchRay \
                        torchray.attribution.rise",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let spatial = inputs.size()[2..].to_vec();
        ensure!(
            (2..=3).contains(&spatial.len()),
            "RISE takes 2D or 3D inputs `[B, C, ...spatial]`, but the input has shape {:?}",
            inputs.size()
        );
        let given = p
            .filter_masks
            .as_deref()
            .map(|path| load_masks(ctx, path, &spatial))
            .transpose()?;
        let total = given.as_ref().map_or(p.num_masks, |m| m.size()[0] as usize);
        let per_pass = p
            .batch_size
            .unwrap_or_else(|| ctx.examples_per_pass(&inputs.narrow(0, 0, 1), Pass::Forward));
        let mut rng = StdRng::seed_from_u64(p.seed.unwrap_or_else(|| ctx.seed()));
        let batch = inputs.size()[0];
        let mut maps: Vec<Tensor> = (0..batch)
            .map(|_| {
                Tensor::zeros(
                    [1, 1]
                        .iter()
                        .chain(&spatial)
                        .copied()
                        .collect::<Vec<_>>()
                        .as_slice(),
                    (Kind::Float, inputs.device()),
                )
            })
            .collect();
        let mut done = 0;
        while done < total {
            ctx.check_cancelled()?;
            let n = per_pass.min(total - done);
            let masks = match &given {
                Some(m) => m.narrow(0, done as i64, n as i64),
                None => random_masks(&mut rng, n, &spatial, p.num_cells, p.p, inputs.device()),
            };
            let masks = masks.to_kind(Kind::Float);
            for (b, map) in maps.iter_mut().enumerate() {
                let x = inputs.narrow(0, b as i64, 1).to_kind(Kind::Float);
                let scores = ctx.evaluate(&(&masks * &x).to_kind(inputs.kind()), target)?;
                let scores = scores.to_kind(Kind::Float);
                let scores = if p.score == Score::Sigmoid {
                    scores.sigmoid()
                } else {
                    scores
                };
                let weights = scores.view(
                    [n as i64, 1]
                        .iter()
                        .chain(std::iter::repeat_n(&1, spatial.len()))
                        .copied()
                        .collect::<Vec<_>>()
                        .as_slice(),
                );
                *map += (weights * &masks).sum_dim_intlist(0, true, Kind::Float);
            }
            done += n;
            ctx.progress(done, total);
        }
        let map = Tensor::cat(&maps, 0) / total as f64;
        Ok(Attribution::new(map.to_kind(inputs.kind())))
    }
}

register_method!(Rise);

/// `n` masks `[n, 1, ...spatial]`: a grid of `cells` per dimension kept with probability `p`,
/// upsampled to `(cells + 1) * ceil(size / cells)` per dimension and cropped at a random
/// shift below one cell.
fn random_masks(
    rng: &mut StdRng,
    n: usize,
    spatial: &[i64],
    cells: i64,
    p: f64,
    device: tch::Device,
) -> Tensor {
    let d = spatial.len();
    let cell: Vec<i64> = spatial.iter().map(|&s| (s + cells - 1) / cells).collect();
    let up: Vec<i64> = cell.iter().map(|&c| (cells + 1) * c).collect();
    let grid_len = (cells as usize).pow(d as u32);
    let mut masks = Vec::with_capacity(n);
    for _ in 0..n {
        let kept: Vec<f32> = (0..grid_len)
            .map(|_| f32::from(u8::from(rng.random::<f64>() < p)))
            .collect();
        let shape: Vec<i64> = [1, 1]
            .into_iter()
            .chain(std::iter::repeat_n(cells, d))
            .collect();
        let grid = Tensor::from_slice(&kept)
            .view(shape.as_slice())
            .to_device(device);
        let smooth = if d == 2 {
            grid.upsample_bilinear2d(up.as_slice(), false, None, None)
        } else {
            grid.upsample_trilinear3d(up.as_slice(), false, None, None, None)
        };
        let mask = (0..d).fold(smooth, |t, k| {
            let shift = rng.random_range(0..cell[k]);
            t.narrow(2 + k as i64, shift, spatial[k])
        });
        masks.push(mask);
    }
    Tensor::cat(&masks, 0)
}

/// The masks of `filter_masks`, checked against the input's grid.
fn load_masks(ctx: &Context<'_>, path: &str, spatial: &[i64]) -> Result<Tensor> {
    let masks = ctx
        .load_tensor(path)
        .map_err(|e| anyhow::anyhow!("filter_masks: {e:#}"))?;
    let size = masks.size();
    let fits = size.len() == spatial.len() + 2 && size[1] == 1 && size[2..] == *spatial;
    if !fits || size[0] == 0 {
        bail!(
            "filter_masks: {path} has shape {size:?}, but RISE needs masks [N, 1, {}] on the \
             input's grid (N >= 1)",
            spatial
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(masks)
}
