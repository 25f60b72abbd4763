//! LayerCAM (Jiang et al., IEEE TIP 2021) as pytorch-grad-cam's `LayerCAM`: each position of
//! each channel weighed by its own positive gradient, `sum over channels of ReLU(G) * A`, which
//! keeps the detail of shallow layers that channel-wide weights average away.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use tch::{Kind, Tensor};

use crate::gradient_cam::{attribute, Params};

pub struct LayerCam;

impl Method for LayerCam {
    type Params = Params;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "cnnvis.layer_cam",
            title: "LayerCAM",
            summary: "A layer's output weighted position by position by its positive gradient, \
                      summed over channels; fine maps from shallow layers too.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                gradients: true,
                layers: true,
                ..Needs::default()
            },
            reference: "Jiang et al., LayerCAM: Exploring Hierarchical Class Activation Maps for \
                        Localization, IEEE Transactions on Image Processing 2021; \
                        pytorch-grad-cam LayerCAM",
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

register_method!(LayerCam);

fn combine(grad: &Tensor, activation: &Tensor) -> Tensor {
    (grad.relu() * activation).sum_dim_intlist(1, false, Kind::Float)
}
