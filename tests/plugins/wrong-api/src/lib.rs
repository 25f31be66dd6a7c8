//! A plugin that passes abi_stable's layout check but declares plugin API version
//! `PLUGIN_API_VERSION + 1`, as a plugin built against a newer, incompatible plugin-api would.
//! The host must refuse it at load time, naming both versions; a hot swap to it must roll
//! back before any process runs it.
//!
//! It is built by hand against the ABI crate, as a plugin not written with plugin-api's
//! traits would be.

use plugin_abi::export_support::{PrefixTypeTrait, RErr, RResult, RStr, RString};
use plugin_abi::{PluginModule, PluginModuleRef, SourceBox, StageBox};

extern "C" fn spec_json() -> RResult<RString, RString> {
    RErr("this plugin speaks another plugin API".into())
}

extern "C" fn new_stage(_config: RStr<'_>) -> RResult<StageBox, RString> {
    RErr("this plugin speaks another plugin API".into())
}

extern "C" fn new_source(_config: RStr<'_>) -> RResult<SourceBox, RString> {
    RErr("this plugin speaks another plugin API".into())
}

fn module() -> PluginModuleRef {
    PluginModule {
        api_version: plugin_abi::PLUGIN_API_VERSION + 1,
        spec_json,
        new_stage,
        new_source,
    }
    .leak_into_prefix()
}

plugin_abi::__export_root_module!(module);
