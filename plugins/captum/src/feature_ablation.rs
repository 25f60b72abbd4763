//! FeatureAblation: each feature (an element, or a group of elements sharing a `feature_mask`
//! label) is replaced by a baseline in turn, and every element of it gets the drop in the target
//! score, as Captum's `FeatureAblation`.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, FeatureMaskSpec, Method, MethodKind, MethodMeta, Needs,
    TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::perturbation::{ablate, per_eval, FeatureMask, Perturbed, Plan, Weighting};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// What ablated elements are replaced with: a number, or a file with a tensor that
    /// broadcasts to the input. Default 0.
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// A file of integer labels grouping the input's elements into features that are ablated
    /// together. Its shape is the input's, or broadcasts to it (a batch dimension of 1, or none,
    /// shares it across examples). Default: every element is its own feature.
    /// Or `{"segmentation": {"algorithm": "slic", ...}}`: superpixels or supervoxels of the
    /// input the method explains (slic, felzenszwalb, quickshift with scikit-image's
    /// parameters; see `esegeta segment`).
    #[serde(default)]
    pub feature_mask: Option<FeatureMaskSpec>,
    /// Features ablated together in one forward pass.
    /// Default: as many as the memory budget allows (Captum's is 1). The map equals the
    /// unbatched one up to float rounding, except through a segmentation wrapper whose
    /// dynamic mask is near-tied (an argmax gap around 1e-6): batched kernels can flip a few
    /// masked voxels there, so give 1, or a fixed mask (`--fixed-mask`, `mask_mode: fixed`),
    /// to reproduce Captum exactly.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub perturbations_per_eval: Option<usize>,
    /// Evaluate the perturbed copies incrementally when the model is an ONNX graph: each
    /// layer recomputes only the part of its output the perturbation reaches, from the
    /// unperturbed input's recorded activations, and the rest of the graph runs in full where
    /// the reach covers a whole layer (the log says where). Exact: the same map as full
    /// evaluation up to float rounding (and the near-tied masks of `perturbations_per_eval`);
    /// false evaluates every copy in full, which is faster on tiny models. Default true.
    #[serde(default = "crate::yes")]
    pub incremental: bool,
}

pub struct FeatureAblation;

impl Method for FeatureAblation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.feature_ablation",
            title: "Feature Ablation",
            summary: "Drop in the target score when each feature (element or labelled group) is \
                      replaced by a baseline.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "Captum documentation, FeatureAblation, \
                        https://captum.ai/api/feature_ablation.html",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let features = FeatureMask::new(ctx, p.feature_mask.as_ref(), inputs)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let ids = features.features();
        let map = ablate(
            ctx,
            inputs,
            target,
            ids.len(),
            Plan {
                per_eval: per_eval(ctx, p.perturbations_per_eval, inputs)?,
                weighting: Weighting::Sum,
                incremental: p.incremental,
            },
            |i| {
                let mask = features.select(ids[i]);
                Ok(Perturbed {
                    input: baselines.where_self(&mask, inputs),
                    mask,
                })
            },
        )?;
        Ok(Attribution::new(map))
    }
}

register_method!(FeatureAblation);
