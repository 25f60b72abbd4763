//! HiResCAM (Draelos & Carin, 2020) as pytorch-grad-cam's `HiResCAM`: the layer's output times
//! its gradient, summed over channels, `sum over channels of G * A`. Unlike GradCAM's
//! channel-wide weights, it shows only positions that raise the score through the layer.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use tch::{Kind, Tensor};

use crate::gradient_cam::{attribute, Params};

pub struct HiResCam;

impl Method for HiResCam {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "cnnvis.hires_cam",
            title: "HiResCAM",
            summary: "A layer's output times its gradient, position by position, summed over \
                      channels.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Draelos & Carin, Use HiResCAM instead of Grad-CAM for faithful \
                        explanations of convolutional neural networks, arXiv:2011.08891, 2020; \
                        pytorch-grad-cam HiResCAM",
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

register_method!(HiResCam);

fn combine(grad: &Tensor, activation: &Tensor) -> Tensor {
    (grad * activation).sum_dim_intlist(1, false, Kind::Float)
}
