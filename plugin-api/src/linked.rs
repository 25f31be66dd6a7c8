//! A stage compiled into the host instead of loaded from a library (feature `linked`).
//!
//! The stage is wrapped by the same export adapter a plugin library exports (decoding,
//! encoding, panic catching, per-record failures) and handed to `plugin-host` as the same
//! trait object, so the host's [`StageInstance`] drives it exactly as it drives a loaded
//! plugin, output checks included. The benchmark runs stage two both ways to measure what
//! loading costs; `plugin_api::testing` runs authors' tests this way.

use crate::export;
use crate::stage::{SourceStage, Stage};
use plugin_host::{CallError, SourceInstance, StageInstance};

/// Constructs stage `S` with `config` (its JSON config table) behind plugin-host's
/// [`StageInstance`].
pub fn stage<S: Stage>(config: &serde_json::Value) -> Result<StageInstance, CallError> {
    StageInstance::construct(export::new_stage::<S>, config)
}

/// Constructs source `S` with `config` behind plugin-host's [`SourceInstance`].
pub fn source<S: SourceStage>(config: &serde_json::Value) -> Result<SourceInstance, CallError> {
    SourceInstance::construct(export::new_source::<S>, config)
}
