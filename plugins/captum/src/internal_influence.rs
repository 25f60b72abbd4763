//! Internal Influence (Leino et al., 2018) as Captum's `InternalInfluence`: the gradient of the
//! target score at a layer, integrated along the path from a baseline to the input with the
//! chosen quadrature rule (integrated gradients at the layer, not multiplied by anything).

use anyhow::Result;
use esegeta_plugin_api::{
    accumulation, register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use tch::Tensor;

use crate::integrated_gradients::quadrature;
use crate::layer_params::capture;
use crate::layer_path::{along_path, per_point, PathParams};

pub struct InternalInfluence;

impl Method for InternalInfluence {
    type Params = PathParams;

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
        p: PathParams,
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
                let part = (grads * weights).sum_dim_intlist(0, false, accumulation(grads.kind()));
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
