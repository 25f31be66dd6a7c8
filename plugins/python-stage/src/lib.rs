//! A stage plugin that runs a Python stage class in embedded CPython: the Python library's
//! `PipelineStage` and `SourcePipelineStage` subclasses, unchanged.
//!
//! Its config names the script and the class (`{"script": "stages/mpp_pipeline.py", "class":
//! "StageTwo"}`, plus `python_path` and `venv` to import from). The host does not know the stage
//! is Python: the bridge speaks the same plugin ABI as every stage, and its spec (topics, group,
//! output topic settings, output schema) is what the class's constructor recorded, which the
//! host reads through the plugin's optional `spec_for_config` entry point.
//!
//! - [`interpreter`] starts CPython once per process, with libpython's symbols made global
//!   first so C extensions import, and puts the bridge's `kafka_client` package on the path.
//! - [`script`] loads the script, constructs the class and reads what it declared.
//! - [`avro`] decodes datums straight into Python objects and encodes returned dicts against
//!   the output schema, naming the field that does not fit.
//! - [`stage`] serves `StageObject`: one GIL acquisition per batch.
//! - [`source`] serves `SourceObject`: `start()` runs in its own thread and hands records over
//!   one at a time, so a stopped source has delivered every record `to_output` returned for.

#![deny(missing_docs)]

pub mod avro;
mod config;
mod interpreter;
mod log;
mod output;
mod script;
mod source;
mod stage;

pub use config::BridgeConfig;

use plugin_abi::export_support::{PrefixTypeTrait, RErr, ROk, RResult, RStr, RString, TD_Opaque};
use plugin_abi::{
    PluginModule, PluginModuleRef, SourceBox, SourceObject_TO, StageBox, StageKind, StageObject_TO,
    PLUGIN_API_VERSION,
};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into an error: a panic unwinding out of `extern "C"` aborts.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(RString::from(e)),
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-string payload".into());
            RErr(RString::from(format!("the Python bridge panicked: {text}")))
        }
    }
}

/// A host that reads only the fixed spec cannot run a stage whose spec is in its script
/// (hosts since `spec_for_config` call that instead).
extern "C" fn fixed_spec() -> RResult<RString, RString> {
    RErr(RString::from(
        "the Python bridge's spec comes from the script its config names; this stage-host \
         predates config-dependent specs (spec_for_config): upgrade stage-host",
    ))
}

/// The spec for a config: the script's class, constructed, says it.
extern "C" fn spec_for_config(config: RStr<'_>) -> RResult<RString, RString> {
    guarded(|| {
        let config = BridgeConfig::parse(config.as_str())?;
        let declared = script::declare(&config)?;
        serde_json::to_string(&declared.spec)
            .map(RString::from)
            .map_err(|e| e.to_string())
    })
}

extern "C" fn new_stage(config: RStr<'_>) -> RResult<StageBox, RString> {
    guarded(|| {
        let config = BridgeConfig::parse(config.as_str())?;
        let declared = script::declare(&config)?;
        if declared.spec.kind != StageKind::Stage {
            return Err(format!(
                "{} is a SourcePipelineStage: run it as a source",
                config.class
            ));
        }
        let stage = stage::PythonStage::new(declared)?;
        Ok(StageObject_TO::from_value(stage, TD_Opaque))
    })
}

extern "C" fn new_source(config: RStr<'_>) -> RResult<SourceBox, RString> {
    guarded(|| {
        let config = BridgeConfig::parse(config.as_str())?;
        let declared = script::declare(&config)?;
        if declared.spec.kind != StageKind::Source {
            return Err(format!(
                "{} is a PipelineStage, not a SourcePipelineStage",
                config.class
            ));
        }
        let source = source::PythonSource::new(declared)?;
        Ok(SourceObject_TO::from_value(source, TD_Opaque))
    })
}

fn module() -> PluginModuleRef {
    PluginModule {
        api_version: PLUGIN_API_VERSION,
        spec_json: fixed_spec,
        new_stage,
        new_source,
    }
    .leak_into_prefix()
}

/// The library's entry points (a static and a function the export macros declare).
#[allow(missing_docs)]
mod entry_points {
    plugin_abi::__export_root_module!(super::module);
    plugin_abi::export_spec_for_config!(super::spec_for_config);
}
