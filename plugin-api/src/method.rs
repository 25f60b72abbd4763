//! [`Method`]: one explanation method, written once with typed parameters.
//!
//! A plugin registers each method with [`register_method!`](crate::register_method); the
//! erased form ([`ErasedMethod`]) is what the plugin's root module walks and calls.

use abi_stable::std_types::RString;
use anyhow::{Context as _, Result};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use tch::Tensor;

use crate::abi::{MethodInfo, MethodKind, Needs};
use crate::context::Context;

/// Static facts about a method; the parameter schema is derived from `Method::Params`.
pub struct MethodMeta {
    pub id: &'static str,
    pub title: &'static str,
    pub summary: &'static str,
    pub kind: MethodKind,
    pub needs: Needs,
    pub reference: &'static str,
}

/// A method's result: the map and extras for the manifest (convergence delta, ...).
pub struct Attribution {
    pub map: Tensor,
    pub extras: serde_json::Value,
}

impl Attribution {
    pub fn new(map: Tensor) -> Self {
        Attribution {
            map,
            extras: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn with_extra(mut self, key: &str, value: serde_json::Value) -> Self {
        if let serde_json::Value::Object(map) = &mut self.extras {
            map.insert(key.to_string(), value);
        }
        self
    }
}

/// One method, Captum-shaped: `attribute(inputs, target, params)`.
pub trait Method: Send + Sync + 'static {
    /// Parameters with the anchor library's keyword names and defaults. Derive
    /// `Deserialize` with `deny_unknown_fields` and `JsonSchema`.
    type Params: DeserializeOwned + JsonSchema;

    fn meta(&self) -> MethodMeta;

    fn attribute(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        params: Self::Params,
    ) -> Result<Attribution>;
}

/// A method with its parameter type erased, as the registry holds it.
pub trait ErasedMethod: Send + Sync {
    fn id(&self) -> &'static str;
    fn info(&self) -> MethodInfo;
    fn run(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        params_json: &str,
    ) -> Result<Attribution>;
}

impl<M: Method> ErasedMethod for M {
    fn id(&self) -> &'static str {
        self.meta().id
    }

    fn info(&self) -> MethodInfo {
        let meta = self.meta();
        let schema = schemars::schema_for!(M::Params);
        MethodInfo {
            id: meta.id.into(),
            title: meta.title.into(),
            summary: meta.summary.into(),
            kind: meta.kind,
            needs: meta.needs,
            params_schema: RString::from(
                serde_json::to_string_pretty(&schema).expect("a schema serialises"),
            ),
            reference: meta.reference.into(),
        }
    }

    fn run(
        &self,
        ctx: &Context<'_>,
        inputs: &Tensor,
        target: i64,
        params_json: &str,
    ) -> Result<Attribution> {
        let params: M::Params = serde_json::from_str(params_json)
            .with_context(|| format!("invalid parameters for {}", self.meta().id))?;
        self.attribute(ctx, inputs, target, params)
    }
}

/// A registered method; collected per plugin by `inventory`.
pub struct MethodEntry(pub &'static dyn ErasedMethod);

inventory::collect!(MethodEntry);

/// Registers a method (a unit struct implementing [`Method`]) in this plugin.
#[macro_export]
macro_rules! register_method {
    ($method:expr) => {
        $crate::inventory::submit! { $crate::MethodEntry(&$method) }
    };
}
