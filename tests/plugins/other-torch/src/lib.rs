//! A plugin that claims it was built against another libtorch: the host must refuse it.

use esegeta_plugin_api::abi::{plugin_methods, plugin_run, Plugin, PluginRef};
use esegeta_plugin_api::abi_stable::{
    export_root_module, prefix_type::PrefixTypeTrait, std_types::RStr,
};

#[export_root_module]
pub fn root() -> PluginRef {
    Plugin {
        abi_version: esegeta_plugin_api::ABI_VERSION,
        libtorch_version: RStr::from_str("1.13.1+cpu"),
        family: RStr::from_str("other_torch"),
        methods: plugin_methods,
        run: plugin_run,
    }
    .leak_into_prefix()
}
