//! A plugin for the host's tests: `testkit.echo` exercises every tensor crossing (borrowed
//! input, host forward, gradient, owned output); `testkit.panic` panics; `testkit.sleep`
//! works for a while, checking for cancellation; `testkit.hang` ignores it; `testkit.segfault`
//! crashes the process; `testkit.nan_below_fp32` fails in reduced precision;
//! `testkit.layer_stub` is a layer method in name only.

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

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Duration {
    /// How long to work.
    pub seconds: f64,
}

fn meta(id: &'static str, summary: &'static str) -> MethodMeta {
    MethodMeta {
        id,
        title: id,
        summary,
        kind: MethodKind::Attribution,
        needs: Needs::default(),
        reference: "none",
    }
}

/// Sleeps in 10 ms steps, checking for cancellation between them, then returns zeros.
pub struct Sleep;

impl Method for Sleep {
    type Params = Duration;
    fn meta(&self) -> MethodMeta {
        meta(
            "testkit.sleep",
            "Works for `seconds`, checking for cancellation every 10 ms.",
        )
    }
    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        _: i64,
        p: Duration,
    ) -> Result<Attribution> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(p.seconds);
        while std::time::Instant::now() < until {
            ctx.check_cancelled()?;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(Attribution::new(inputs.zeros_like()))
    }
}

register_method!(Sleep);

/// Sleeps without ever checking for cancellation.
pub struct Hang;

impl Method for Hang {
    type Params = Duration;
    fn meta(&self) -> MethodMeta {
        meta(
            "testkit.hang",
            "Sleeps for `seconds` and never checks for cancellation.",
        )
    }
    fn attribute(
        &self,
        _: &Context<'_>,
        inputs: &Tensor,
        _: i64,
        p: Duration,
    ) -> Result<Attribution> {
        std::thread::sleep(std::time::Duration::from_secs_f64(p.seconds));
        Ok(Attribution::new(inputs.zeros_like()))
    }
}

register_method!(Hang);

/// Writes through a null pointer.
pub struct Segfault;

impl Method for Segfault {
    type Params = NoParams;
    fn meta(&self) -> MethodMeta {
        meta(
            "testkit.segfault",
            "Crashes the process with a segmentation fault.",
        )
    }
    fn attribute(&self, _: &Context<'_>, _: &Tensor, _: i64, _: NoParams) -> Result<Attribution> {
        // SAFETY: none; crashing is the point.
        unsafe { std::ptr::null_mut::<i32>().write_volatile(1) };
        unreachable!("the write above crashes")
    }
}

register_method!(Segfault);

/// Returns NaN everywhere unless the input is float32, to exercise the fp32 fallback.
pub struct NanBelowFp32;

impl Method for NanBelowFp32 {
    type Params = NoParams;
    fn meta(&self) -> MethodMeta {
        meta(
            "testkit.nan_below_fp32",
            "The input in fp32; NaN in reduced precision.",
        )
    }
    fn attribute(
        &self,
        _: &Context<'_>,
        inputs: &Tensor,
        _: i64,
        _: NoParams,
    ) -> Result<Attribution> {
        let map = if inputs.kind() == tch::Kind::Float {
            inputs.copy()
        } else {
            inputs.full_like(f64::NAN)
        };
        Ok(Attribution::new(map))
    }
}

register_method!(NanBelowFp32);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerParams {
    /// The layer.
    pub layer: String,
}

/// A layer method in name only: for the host's checks of what may be explained by what.
pub struct LayerStub;

impl Method for LayerStub {
    type Params = LayerParams;
    fn meta(&self) -> MethodMeta {
        MethodMeta {
            id: "testkit.layer_stub",
            title: "Layer stub",
            summary: "Declares itself a layer method; refuses to run.",
            kind: MethodKind::LayerAttribution,
            needs: Needs {
                layers: true,
                ..Needs::default()
            },
            reference: "none",
        }
    }
    fn attribute(
        &self,
        _: &Context<'_>,
        _: &Tensor,
        _: i64,
        p: LayerParams,
    ) -> Result<Attribution> {
        anyhow::bail!("testkit.layer_stub does not run (layer {})", p.layer)
    }
}

register_method!(LayerStub);

esegeta_plugin_api::export_plugin!("testkit");
