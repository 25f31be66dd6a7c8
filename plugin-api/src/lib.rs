//! What a stage plugin's author depends on.
//!
//! Implement [`Stage`] (consume, transform, produce) or [`SourceStage`] (produce only) over
//! ordinary serde types, declare its topics and schemas with a [`StageSpec`], and export it
//! with [`export_stage!`] or [`export_source!`] from a `cdylib`. `stage-host` loads the
//! library and calls it with batches of Avro datums; the decoding into your input type and
//! the encoding of what you emit run in the plugin, in code this crate compiles into it.
//!
//! With the `testing` feature (for a plugin crate's dev-dependencies), `plugin_api::testing` runs a
//! stage or source on JSON records through the path a loaded plugin takes: the export
//! adapter, the ABI objects and the host's checks, without Kafka.
//!
//! The rest is implementation, on the plugin's side of the boundary: the Avro codec and the
//! adapters from the typed traits to the ABI objects of `plugin-abi`, which is what crosses
//! the boundary. The host links `plugin-host` and `plugin-abi`, never this crate.

#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod avro;
mod export;
mod stage;

#[cfg(feature = "codec")]
pub mod codec;
#[cfg(feature = "linked")]
pub mod linked;
#[cfg(feature = "testing")]
pub mod testing;

pub use avro::{FromAvro, GenericRecord, ToAvro};
pub use plugin_abi::{StageKind, StageSpec, TopicSpec};
pub use stage::{BoxError, Config, EmitError, Emitter, Poll, Record, SourceStage, Stage};

/// Re-exported so stages use the same apache-avro as the codec compiled into them (the
/// `Value` of a [`GenericRecord`]).
pub use apache_avro;

/// Folds a message (libraries' errors often span lines) into one line for logs and headers.
pub(crate) fn one_line(text: impl std::fmt::Display) -> String {
    text.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Items the export macros expand to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{source_module, stage_module};
    pub use plugin_abi::__export_root_module;
}
