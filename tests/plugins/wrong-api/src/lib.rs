//! A plugin that passes abi_stable's layout check but declares plugin API version
//! `PLUGIN_API_VERSION + 1`, as a plugin built against a newer, incompatible plugin-api would.
//! The host must refuse it at load time, naming both versions; a hot swap to it must roll
//! back before any process runs it.

use plugin_api::__private::PluginModuleRef;
use plugin_api::abi::export_support::{PrefixTypeTrait, RErr, RResult, RStr, RString};
use plugin_api::abi::{PluginModule, SourceBox, StageBox};

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
        api_version: plugin_api::PLUGIN_API_VERSION + 1,
        spec_json,
        new_stage,
        new_source,
    }
    .leak_into_prefix()
}

plugin_api::__export_root_module!(module);
