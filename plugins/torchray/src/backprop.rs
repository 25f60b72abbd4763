//! TorchRay's backpropagation saliency: the gradient of the target score at the input, with a
//! rule on every ReLU or none, reduced to one channel by the largest |value| over channels,
//! then smoothed and resized as [`Post`] says: `[B, 1, ...spatial]`. One [`Backprop`] value
//! per method; they differ only in the ReLU rule.

use anyhow::Result;
use esegeta_plugin_api::{Attribution, Context, Method, MethodKind, MethodMeta, Needs};
use serde_json::json;
use tch::Tensor;

use crate::saliency::{max_abs_over_channels, Post};

/// One backpropagation method: its description and the host rule on ReLUs (`None`: the plain
/// gradient).
pub struct Backprop {
    pub id: &'static str,
    pub title: &'static str,
    pub summary: &'static str,
    pub reference: &'static str,
    pub relu_rule: Option<&'static str>,
}

impl Method for Backprop {
    type Params = Post;

    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: self.id,
            title: self.title,
            summary: self.summary,
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                backward_rules: self.relu_rule.is_some(),
                ..Needs::default()
            },
            reference: self.reference,
        }
    }

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        post: Post,
    ) -> Result<Attribution> {
        let gradient = match self.relu_rule {
            None => ctx.gradient(inputs, target)?,
            Some(rule) => {
                let composite = json!({"rules": [{"ops": ["Relu"], "rule": {"name": rule}}]});
                ctx.backward_rules(inputs, target, &composite, None)?.inputs
            }
        };
        let map = post.apply(&max_abs_over_channels(&gradient), inputs)?;
        Ok(Attribution::new(map.detach().to_kind(inputs.kind())))
    }
}

esegeta_plugin_api::register_method!(Backprop {
    id: "torchray.gradient",
    title: "Gradient (TorchRay)",
    summary: "The gradient of the target score at the input, as TorchRay reduces it: the \
              largest |gradient| over channels, optionally smoothed and resized.",
    reference: "Simonyan et al., Deep Inside Convolutional Networks: Visualising Image \
                Classification Models and Saliency Maps, ICLR workshop 2014; TorchRay \
                torchray.attribution.gradient",
    relu_rule: None,
});

esegeta_plugin_api::register_method!(Backprop {
    id: "torchray.deconvnet",
    title: "DeconvNet (TorchRay)",
    summary: "The gradient with every ReLU passing back only the positive part of the \
              gradient (whatever its input was), reduced as TorchRay's gradient.",
    reference: "Zeiler and Fergus, Visualizing and Understanding Convolutional Networks, ECCV \
                2014; TorchRay torchray.attribution.deconvnet",
    relu_rule: Some("deconvnet"),
});

esegeta_plugin_api::register_method!(Backprop {
    id: "torchray.guided_backprop",
    title: "Guided backpropagation (TorchRay)",
    summary: "The gradient with every ReLU passing back only positive gradients at positive \
              inputs, reduced as TorchRay's gradient.",
    reference: "Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR \
                2015 workshop; TorchRay torchray.attribution.guided_backprop",
    relu_rule: Some("guided_backprop"),
});
