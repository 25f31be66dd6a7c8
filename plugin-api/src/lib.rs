//! The interface between `stage-host` and stage plugins.
//!
//! Plugin authors implement [`Stage`] (consume, transform, produce) or [`SourceStage`]
//! (produce only) over ordinary serde types, and export it with [`export_stage!`] or
//! [`export_source!`] from a `cdylib`. The host loads the library with [`host::Plugin::load`].
//!
//! What crosses the boundary, and why it is shaped the way it is, is in [`abi`]: Avro datum
//! bytes and plain `#[repr(C)]` records, one call per batch, into host-owned buffers. Avro
//! decoding and encoding ([`avro`]) is compiled into the plugin, so the host never handles
//! typed values.

pub mod abi;
pub mod avro;
mod export;
pub mod host;
mod spec;
mod stage;
pub mod testing;

pub use avro::{FromAvro, GenericRecord, ToAvro};
pub use spec::{StageKind, StageSpec, TopicSpec};
pub use stage::{BoxError, Config, EmitError, Emitter, Poll, Record, SourceStage, Stage};

/// Re-exported so stages use the same apache-avro as the codec compiled into them.
pub use apache_avro;

/// The version of the plugin interface. The host refuses a plugin built with another value,
/// on top of abi_stable's own layout check. Bump it for any change in behaviour across the
/// boundary that the type layout does not show.
pub const PLUGIN_API_VERSION: u32 = 1;

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
    pub use crate::abi::export_support::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
    pub use crate::abi::PluginModuleRef;
    pub use crate::export::{source_module, stage_module};
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_macro_uses_abi_stables_symbol_name() {
        // The literal in `__export_root_module!` must be the name abi_stable looks up.
        assert_eq!(
            crate::abi::ROOT_MODULE_SYMBOL,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
