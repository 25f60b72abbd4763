//! FeaturePermutation (Fisher et al., 2019): each feature's values are shuffled across the
//! examples of the batch, and every element of it gets the drop in the target score, as Captum's
//! `FeaturePermutation`.

use anyhow::{ensure, Result};
use esegeta_plugin_api::{
    register_method, Attribution, Context, FeatureMaskSpec, Method, MethodKind, MethodMeta, Needs,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::perturbation::{ablate, per_eval, FeatureMask, Perturbed, Plan, Weighting};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A file of integer labels grouping the input's elements into features that are permuted
    /// together. Its shape is the input's, or broadcasts to it (a batch dimension of 1, or none,
    /// shares it across examples). Default: every element is its own feature.
    /// Or `{"segmentation": {"algorithm": "slic", ...}}`: superpixels or supervoxels of the
    /// input the method explains (slic, felzenszwalb, quickshift with scikit-image's
    /// parameters; see `esegeta segment`).
    #[serde(default)]
    pub feature_mask: Option<FeatureMaskSpec>,
    /// Features permuted together in one forward pass.
    /// Default: as many as the memory budget allows (Captum's is 1). The map equals the
    /// unbatched one up to float rounding, except through a segmentation wrapper whose
    /// dynamic mask is near-tied (an argmax gap around 1e-6): batched kernels can flip a few
    /// masked voxels there, so give 1, or a fixed mask (`--fixed-mask`, `mask_mode: fixed`),
    /// to reproduce Captum exactly.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub perturbations_per_eval: Option<usize>,
}

pub struct FeaturePermutation;

impl Method for FeaturePermutation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.feature_permutation",
            title: "Feature Permutation",
            summary: "Drop in the target score when each feature's values are shuffled across \
                      the examples of the batch.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Fisher, Rudin & Dominici, All Models are Wrong, but Many are Useful, \
                        JMLR 2019, arXiv:1801.01489",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let batch = inputs.size()[0];
        ensure!(
            batch >= 2,
            "feature permutation shuffles each feature across the examples of the batch, so it \
             needs at least 2 examples; the input has {batch}; give a batch of inputs"
        );
        let features = FeatureMask::new(ctx, p.feature_mask.as_ref(), inputs)?;
        let mut rng = StdRng::seed_from_u64(ctx.seed());
        let ids = features.features();
        let map = ablate(
            ctx,
            inputs,
            target,
            ids.len(),
            Plan {
                per_eval: per_eval(ctx, p.perturbations_per_eval, inputs)?,
                weighting: Weighting::Sum,
                // Shuffling across the batch changes every example: nothing to record.
                incremental: false,
            },
            |i| {
                let mask = features.select(ids[i]);
                let shuffled =
                    inputs.index_select(0, &non_identity_permutation(batch, &mut rng, inputs));
                Ok(Perturbed {
                    input: shuffled.where_self(&mask, inputs),
                    mask,
                })
            },
        )?;
        Ok(Attribution::new(map))
    }
}

register_method!(FeaturePermutation);

/// A uniformly drawn permutation of `0..n` other than the identity (Captum redraws until it is
/// not; with 2 examples it is always the swap), as an index tensor on `like`'s device.
fn non_identity_permutation(n: i64, rng: &mut StdRng, like: &Tensor) -> Tensor {
    let identity: Vec<i64> = (0..n).collect();
    let mut perm = identity.clone();
    while perm == identity {
        perm.shuffle(rng);
    }
    Tensor::from_slice(&perm)
        .to_kind(Kind::Int64)
        .to_device(like.device())
}
