//! A plugin for the host's tests: `testkit.echo` exercises every tensor crossing (borrowed
//! input, host forward, gradient, owned output) and `testkit.panic` panics.

use anyhow::Result;
use esegeta_plugin_api::{
    register_method, Attribution, Context, Method, MethodKind, MethodMeta, Needs,
};
use schemars::JsonSchema;
use serde::Deserialize;
use tch::Tensor;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Returns `2 * inputs + 0 * gradient`, after a forward and a backward through the host.
pub struct Echo;

impl Method for Echo {
    type Params = NoParams;
    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "testkit.echo",
            title: "Echo",
            summary: "Twice the input, after a forward and backward through the host.",
            kind: MethodKind::Attribution,
            needs: Needs {
                gradients: true,
                ..Needs::default()
            },
            reference: "none",
        }
    }
    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        _: NoParams,
    ) -> Result<Attribution> {
        let grad = ctx.gradient(inputs, target)?;
        Ok(Attribution::new(inputs * 2.0 + grad * 0.0))
    }
}

register_method!(Echo);

pub struct Panic;

impl Method for Panic {
    type Params = NoParams;
    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "testkit.panic",
            title: "Panic",
            summary: "Panics, to show that a panicking method fails its job only.",
            kind: MethodKind::Attribution,
            needs: Needs::default(),
            reference: "none",
        }
    }
    fn attribute(&self, _: &Context<'_>, _: &Tensor, _: i64, _: NoParams) -> Result<Attribution> {
        panic!("testkit.panic was asked to panic")
    }
}

register_method!(Panic);

esegeta_plugin_api::export_plugin!("testkit");
