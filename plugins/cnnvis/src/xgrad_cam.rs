//! XGrad-CAM (Fu et al., BMVC 2020) as pytorch-grad-cam's `XGradCAM`: each channel weighs
//! `sum over positions of G * A / (sum over positions of A + 1e-7)`, the weights the paper
//! derives from its sensitivity and conservation axioms.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use tch::{Kind, Tensor};

use crate::gradient_cam::{attribute, spatial, weighted_channels, Params};

pub struct XGradCam;

impl Method for XGradCam {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "cnnvis.xgrad_cam",
            title: "XGrad-CAM",
            summary: "A layer's channels weighted by their activation-weighted mean gradient \
                      (the weights of the sensitivity and conservation axioms).",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Fu et al., Axiom-based Grad-CAM: Towards Accurate Visualization and \
                        Explanation of CNNs, BMVC 2020; pytorch-grad-cam XGradCAM",
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        p: Params,
    ) -> Result<Attribution> {
        attribute(ctx, inputs, target, &p, combine)
    }
}

register_method!(XGradCam);

fn combine(grad: &Tensor, activation: &Tensor) -> Tensor {
    let axes = spatial(activation);
    let total = activation.sum_dim_intlist(axes.as_slice(), true, Kind::Float);
    let weights =
        (grad * activation / (total + 1e-7)).sum_dim_intlist(axes.as_slice(), false, Kind::Float);
    weighted_channels(&weights, activation)
}
