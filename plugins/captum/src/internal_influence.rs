//! Internal Influence (Leino et al., 2018) as Captum's `InternalInfluence`: the gradient of the
//! target score at a layer, integrated along the path from a baseline to the input with the
//! chosen quadrature rule (integrated gradients at the layer, not multiplied by anything).

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs, TensorOrScalar,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::integrated_gradients::{quadrature, Rule};
use crate::layer_params::capture;
use crate::layer_path::{along_path, per_point};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The layer, by its PyTorch module path (`esegeta layers MODEL` lists them; `--layer`
    /// sets it).
    pub layer: String,
    /// The starting point of the path: a number for every element, or a tensor file that
    /// broadcasts to the input (default 0).
    #[serde(default)]
    pub baselines: TensorOrScalar,
    /// Number of points on the path (Riemann rules need at least 2).
    #[serde(default = "default_n_steps")]
    #[schemars(range(min = 1))]
    pub n_steps: usize,
    /// The quadrature rule.
    #[serde(default)]
    pub method: Rule,
    /// Path points evaluated together (times the batch size); default: as many as the memory
    /// budget allows.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub internal_batch_size: Option<usize>,
    /// Attribute to the layer's input (the value its first node reads) instead of its output.
    #[serde(default)]
    pub attribute_to_layer_input: bool,
}

fn default_n_steps() -> usize {
    50
}

pub struct InternalInfluence;

impl Method for InternalInfluence {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "captum.internal_influence",
            title: "Internal Influence",
            summary: "The gradient of the target score at a layer, integrated along the path \
                      from a baseline to the input.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Leino et al., Influence-Directed Explanations for Deep Convolutional \
                        Networks, ITC 2018",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        let tap = capture(&p.layer, p.attribute_to_layer_input);
        let (alphas, step_sizes) = quadrature(p.method, p.n_steps)?;
        let baselines = p.baselines.resolve(ctx, "baselines", inputs)?;
        let mut total: Option<Tensor> = None;
        along_path(
            ctx,
            inputs,
            &baselines,
            target,
            tap,
            &alphas,
            p.internal_batch_size,
            |first, grads, _| {
                let k = grads.size()[0] as usize;
                let weights = per_point(&step_sizes[first..first + k], grads.dim(), grads);
                let part = (grads * weights).sum_dim_intlist(0, false, Kind::Float);
                total = Some(match total.take() {
                    Some(t) => t + part,
                    None => part,
                });
                Ok(())
            },
        )?;
        Ok(Attribution::new(
            total.expect("at least one path point").detach(),
        ))
    }
}

register_method!(InternalInfluence);
