//! The entry points behind every plugin's root module, and [`export_plugin!`].
//!
//! Each entry catches panics: a panic must never unwind into the host, so a panicking method
//! becomes an error for its job.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::{RResult, RString, RVec};

use crate::abi::{HostRef, MethodInfo, RunOutput, RunRequest};
use crate::context::Context;
use crate::method::MethodEntry;
use crate::tensor::TensorHandle;

/// Lists this plugin's registered methods.
pub extern "C" fn plugin_methods() -> RResult<RVec<MethodInfo>, RString> {
    guard(|| {
        Ok(inventory::iter::<MethodEntry>
            .into_iter()
            .map(|m| m.0.info())
            .collect())
    })
}

/// Runs one registered method.
pub extern "C" fn plugin_run(
    request: RunRequest<'_>,
    host: HostRef<'_>,
) -> RResult<RunOutput, RString> {
    guard(|| {
        let id = request.method_id.as_str();
        let method = inventory::iter::<MethodEntry>
            .into_iter()
            .find(|m| m.0.id() == id)
            .ok_or_else(|| anyhow::anyhow!("this plugin has no method `{id}`"))?;
        let ctx = Context::new(host);
        let inputs = request.inputs.to_tensor();
        let out = method
            .0
            .run(&ctx, &inputs, request.target, request.params_json.as_str())?;
        Ok(RunOutput {
            attribution: TensorHandle::new(out.map),
            extras_json: RString::from(out.extras.to_string()),
        })
    })
}

fn guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(error)) => RResult::RErr(RString::from(format!("{error:#}"))),
        Err(panic) => RResult::RErr(RString::from(format!(
            "the method panicked: {}",
            panic_message(&panic)
        ))),
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is unnamed).
pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Exports this crate's registered methods as an esegeta plugin of family `$family`.
#[macro_export]
macro_rules! export_plugin {
    ($family:literal) => {
        #[$crate::abi_stable::export_root_module]
        pub fn esegeta_root_module() -> $crate::abi::PluginRef {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::abi::Plugin {
                abi_version: $crate::ABI_VERSION,
                libtorch_version: $crate::abi_stable::std_types::RStr::from_str(
                    $crate::LIBTORCH_VERSION,
                ),
                family: $crate::abi_stable::std_types::RStr::from_str($family),
                methods: $crate::abi::plugin_methods,
                run: $crate::abi::plugin_run,
            }
            .leak_into_prefix()
        }
    };
}
