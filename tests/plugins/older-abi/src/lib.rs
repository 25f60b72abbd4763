//! A plugin as one built before the last ABI change reports itself: the previous plugin ABI
//! version. The host must refuse it, naming both versions and the fix.

use esegeta_plugin_api::abi::{plugin_methods, plugin_run, Plugin, PluginRef};
use esegeta_plugin_api::abi_stable::{
    export_root_module, prefix_type::PrefixTypeTrait, std_types::RStr,
};

#[export_root_module]
pub fn root() -> PluginRef {
    Plugin {
        abi_version: esegeta_plugin_api::ABI_VERSION - 1,
        libtorch_version: RStr::from_str(esegeta_plugin_api::LIBTORCH_VERSION),
        family: RStr::from_str("older_abi"),
        methods: plugin_methods,
        run: plugin_run,
    }
    .leak_into_prefix()
}
