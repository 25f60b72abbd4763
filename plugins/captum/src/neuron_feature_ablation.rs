//! NeuronFeatureAblation: FeatureAblation of one neuron of a layer instead of the target
//! score, as Captum's `NeuronFeatureAblation`: each feature replaced by the baseline in turn,
//! its elements credited with the drop in the neuron's value.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, FeatureMaskSpec, Method, MethodKind, MethodMeta, Needs,
    TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

use crate::neuron::{Neuron, Selector};
use crate::perturbation::{ablate_with, per_eval, FeatureMask, Perturbed, Weighting};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`--layer` sets it).
    pub layer: String,
    /// The neuron's index in the layer's output without the batch dimension (`[channel, y, x]`
    /// for a 2D convolution; an integer for a flat layer).
    pub neuron_selector: Selector,
    /// What ablated elements are replaced with: a number, or a file with a tensor that
    /// broadcasts to the input. Default 0.
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// A file of integer labels grouping the input's elements into features ablated together;
    /// default: every element is its own feature.
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
    /// Select the neuron in the layer's input instead of its output.
    #[serde(default)]
    pub attribute_to_neuron_input: bool,
}

pub struct NeuronFeatureAblation;

impl Method for NeuronFeatureAblation {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.neuron_feature_ablation",
            title: "Neuron Feature Ablation",
            summary: "Drop in one neuron of a layer when each feature of the input is replaced \
                      by a baseline.",
            kind: MethodKind::Attribution,
            needs: Needs {
                layers: true,
                ..Needs::default()
            },
            reference: "Captum documentation, NeuronFeatureAblation, \
                        https://captum.ai/api/neuron.html#neuron-feature-ablation",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let neuron = Neuron {
            layer: &p.layer,
            selector: &p.neuron_selector,
            at_input: p.attribute_to_neuron_input,
        };
        let features = FeatureMask::new(ctx, p.feature_mask.as_ref(), inputs)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let ids = features.features();
        let batch = inputs.size()[0];
        let values = |copies: &[&Tensor]| -> Result<Tensor> {
            let all = Tensor::f_cat(copies, 0)?;
            let v = tch::no_grad(|| neuron.value(ctx, &all))?;
            Ok(v.reshape([copies.len() as i64, batch]))
        };
        let map = ablate_with(
            ctx,
            inputs,
            ids.len(),
            per_eval(ctx, p.perturbations_per_eval, inputs)?,
            Weighting::Sum,
            values,
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

register_method!(NeuronFeatureAblation);
