//! What crosses the boundary between `stage-host` and a stage plugin, and what both sides
//! need to agree on it. This is the only crate of the workspace that names `abi_stable`.
//!
//! Everything here is deliberately small: byte buffers, spans into them, plain `#[repr(C)]`
//! records, two trait objects ([`StageObject`], [`SourceObject`]), the root module every
//! plugin library exports ([`PluginModule`]), [`PLUGIN_API_VERSION`], and the stage's
//! declaration ([`StageSpec`]), which crosses once, as JSON. Typed values (serde structs, Avro
//! `Value`s) never cross, so the host and a plugin may be built with different versions of
//! serde or apache-avro.
//!
//! Two crates build on it, one per side: `plugin-api` (what plugin authors depend on: the
//! traits, the codec, the export macros that produce a [`PluginModule`]) and `plugin-host`
//! (what the host links: loading a library through [`library::open`] and calling the
//! objects). Neither names abi_stable, so the ABI layer can be replaced here alone.
//!
//! Memory rule: the host owns the input batch and the [`OutputBuffer`]; the plugin only
//! borrows them for the duration of a call. `RVec` carries its own allocator vtable, so the
//! plugin growing a host-owned buffer allocates with the host's allocator.
//!
//! Compatibility: the layouts, the root module's name and version strings and
//! [`PLUGIN_API_VERSION`] are what a plugin built earlier was checked against; keep them as
//! they are unless the plugin API version is bumped. abi_stable also records the declaring
//! package's name in each layout: `build.rs` keeps it at `plugin-api`, where these types were
//! declared before this crate existed.

#![deny(missing_docs)]
#![warn(unreachable_pub)]
// abi_stable's `#[sabi_trait]` expands to impls of its own traits inside consts.
#![allow(non_local_definitions)]

mod spec;

pub use spec::{StageKind, StageSpec, TopicSpec};

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The version of the plugin interface. The host refuses a plugin built with another value,
/// on top of abi_stable's own layout check. Bump it for any change in behaviour across the
/// boundary that the type layout does not show.
pub const PLUGIN_API_VERSION: u32 = 1;

/// abi_stable's FFI-safe standard types, as the boundary's signatures use them.
pub mod std_types {
    pub use abi_stable::std_types::{
        RBox, RErr, RNone, ROk, ROption, RResult, RSlice, RSome, RStr, RString, RVec,
    };
}

/// A byte range inside one of the batch buffers.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Number of bytes.
    pub len: u32,
}

impl Span {
    /// The bytes this span covers in `buf`.
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..(self.start + self.len) as usize]
    }
}

/// One input record, as the host hands it to a stage: everything but the bytes, which live in
/// [`InputBatch::bytes`].
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct InputRecord {
    /// The record key, if it has one (Confluent framing already stripped when the stage
    /// declares a key schema).
    pub key: Span,
    /// Whether the record has a key at all (a null key is different from an empty one).
    pub has_key: bool,
    /// The Avro datum, Confluent framing stripped.
    pub value: Span,
    /// The registry id of the schema the value was written with.
    pub value_schema_id: u32,
    /// Kafka partition the record came from.
    pub partition: i32,
    /// Kafka offset of the record.
    pub offset: i64,
    /// Record timestamp, milliseconds since the epoch (-1 when the broker gave none).
    pub timestamp_ms: i64,
}

/// A batch of input records: one flat byte buffer and the records that point into it.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct InputBatch<'a> {
    /// Keys and values of all records, back to back.
    pub bytes: RSlice<'a, u8>,
    /// The records, in consumption order.
    pub records: RSlice<'a, InputRecord>,
}

/// Which key an output record carries.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKey {
    /// The key of the input record it was derived from (the default for stages).
    SameAsInput,
    /// The bytes at [`OutputRecord::key`].
    Given,
    /// No key.
    Null,
}

/// One output record the plugin wrote into an [`OutputBuffer`].
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct OutputRecord {
    /// Index of the input record in the batch this output derives from (0 for sources).
    pub input_index: u32,
    /// Which key to produce with.
    pub key_kind: OutputKey,
    /// The key bytes when `key_kind` is [`OutputKey::Given`].
    pub key: Span,
    /// The Avro datum, encoded with the stage's output schema, without framing.
    pub value: Span,
}

/// What went wrong with one input record.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The value could not be decoded with its writer schema (or resolved to the reader schema).
    Decode,
    /// The stage's transform returned an error.
    Transform,
    /// The stage's transform panicked.
    Panic,
    /// An output value did not match the output schema.
    Encode,
}

/// A failure for one input record. The plugin emits no output for a record that failed.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct RecordFailure {
    /// Index of the input record in the batch.
    pub input_index: u32,
    /// The kind of failure.
    pub kind: FailureKind,
    /// A one-line description.
    pub message: RString,
}

/// Host-owned, reused buffer that a plugin appends its outputs and failures to.
#[repr(C)]
#[derive(StableAbi, Default)]
pub struct OutputBuffer {
    /// Keys and values of all outputs, back to back.
    pub bytes: RVec<u8>,
    /// The outputs, in the order they were emitted.
    pub records: RVec<OutputRecord>,
    /// Input records that produced no output because they failed.
    pub failures: RVec<RecordFailure>,
}

impl OutputBuffer {
    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
        self.failures.clear();
    }
}

/// What a source stage says after a poll.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// Poll again at once.
    Ready,
    /// Nothing to emit now; poll again after this many milliseconds.
    WaitMillis(u64),
    /// The source has emitted everything it ever will.
    Finished,
}

/// A constructed stage, as the host sees it.
#[sabi_trait]
pub trait StageObject: Send {
    /// Makes the writer schema with registry id `id` known to the plugin. The host calls this
    /// once per id before the first record written with it.
    fn add_writer_schema(&mut self, id: u32, schema_json: RStr<'_>) -> RResult<(), RString>;

    /// Transforms a batch, appending outputs and per-record failures to `out`. An `Err` means
    /// the whole batch failed and nothing in `out` may be used.
    #[sabi(last_prefix_field)]
    fn process(&mut self, batch: InputBatch<'_>, out: &mut OutputBuffer) -> RResult<(), RString>;
}

/// A constructed source stage, as the host sees it.
#[sabi_trait]
pub trait SourceObject: Send {
    /// Appends at most `max` records to `out`.
    #[sabi(last_prefix_field)]
    fn poll(&mut self, max: u32, out: &mut OutputBuffer) -> RResult<SourceStatus, RString>;

    /// The source's checkpoint after its last poll, if it keeps one. After the prefix: a
    /// plugin built before checkpoints existed has no such entry, and the default (none) is
    /// used for it.
    fn checkpoint(&self) -> RResult<ROption<RString>, RString> {
        RResult::ROk(ROption::RNone)
    }

    /// Resumes from a checkpoint an earlier run returned (default: ignored).
    fn restore(&mut self, checkpoint: RStr<'_>) -> RResult<(), RString> {
        let _ = checkpoint;
        RResult::ROk(())
    }
}

/// A stage trait object owned by the host.
pub type StageBox = StageObject_TO<'static, RBox<()>>;
/// A source trait object owned by the host.
pub type SourceBox = SourceObject_TO<'static, RBox<()>>;

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// [`PLUGIN_API_VERSION`] as the plugin was built.
    pub api_version: u32,
    /// The stage's [`StageSpec`] as JSON.
    pub spec_json: extern "C" fn() -> RResult<RString, RString>,
    /// Constructs a stage from its configuration (a JSON object). Only for stages.
    pub new_stage: extern "C" fn(config_json: RStr<'_>) -> RResult<StageBox, RString>,
    /// Constructs a source from its configuration (a JSON object). Only for sources.
    #[sabi(last_prefix_field)]
    pub new_source: extern "C" fn(config_json: RStr<'_>) -> RResult<SourceBox, RString>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "stage_plugin";
    const NAME: &'static str = "stage_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The shape of [`PluginModule::new_stage`]: constructs a stage from its configuration (JSON).
/// The host calls a plugin's through its root module, or the export adapter's directly for a
/// stage linked into the host; both go through the same code from there on.
pub type NewStage = extern "C" fn(config_json: RStr<'_>) -> RResult<StageBox, RString>;

/// The shape of [`PluginModule::new_source`]: constructs a source from its configuration.
pub type NewSource = extern "C" fn(config_json: RStr<'_>) -> RResult<SourceBox, RString>;

/// The shape of a plugin's optional [`SPEC_FOR_CONFIG_SYMBOL`]: its [`StageSpec`] (JSON) for a
/// configuration (JSON). A bridge that runs a script (the Python stage) reads its topics,
/// group and schemas from the script its config names, so its spec depends on the config.
pub type SpecForConfig = extern "C" fn(config_json: RStr<'_>) -> RResult<RString, RString>;

/// The symbol of a plugin's optional [`SpecForConfig`] function, exported with
/// [`export_spec_for_config!`](crate::export_spec_for_config).
///
/// It is a symbol of its own rather than a field of [`PluginModule`] because abi_stable
/// refuses a library whose root module has fewer fields than the loader's (its layout check
/// accepts only a library newer than the loader): a field appended there would make this host
/// refuse every plugin built before it. A plugin without the symbol declares the same spec
/// for every config, [`PluginModule::spec_json`]. The version suffix is part of the name, so a
/// change of its signature is a new symbol.
pub const SPEC_FOR_CONFIG_SYMBOL: &str = "stage_plugin_spec_for_config_v1";

/// Exports `$function` (a [`SpecForConfig`]) under [`SPEC_FOR_CONFIG_SYMBOL`]. The name is a
/// literal (attributes take no constants); a test checks it against the constant.
#[macro_export]
macro_rules! export_spec_for_config {
    ($function:path) => {
        #[doc(hidden)]
        #[no_mangle]
        // Reached by name through the dynamic loader, not by a Rust path, so a plugin that
        // expands this macro outside its crate root (or in a test module) is not warned.
        #[allow(unreachable_pub)]
        pub extern "C" fn stage_plugin_spec_for_config_v1(
            config_json: $crate::std_types::RStr<'_>,
        ) -> $crate::std_types::RResult<$crate::std_types::RString, $crate::std_types::RString> {
            let function: $crate::SpecForConfig = $function;
            function(config_json)
        }
    };
}

/// Host side: opening a plugin library.
///
/// The only abi_stable calls the host makes. What abi_stable reports is returned as a
/// [`library::Refusal`] without abi_stable's types, so the host words it its own way.
pub mod library {
    use super::PluginModuleRef;
    use abi_stable::library::{lib_header_from_path, LibraryError};
    use std::path::Path;

    /// Why a library could not be opened as a plugin.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Refusal {
        /// The dynamic loader could not open the file; its message (it may span lines).
        Open(String),
        /// The library has no plugin entry point (abi_stable's root module symbol).
        NoEntryPoint,
        /// abi_stable's version check failed: the library was built against another,
        /// incompatible version of the interface crate.
        IncompatibleVersion {
            /// The version this side was built with.
            expected: String,
            /// The version the library was built with.
            found: String,
        },
        /// abi_stable's layout check failed: the library's interface types differ.
        Layout,
        /// Anything else abi_stable reported; its message.
        Other(String),
    }

    /// The library's optional [`SpecForConfig`](crate::SpecForConfig) function
    /// ([`SPEC_FOR_CONFIG_SYMBOL`](crate::SPEC_FOR_CONFIG_SYMBOL)), `None` when it exports
    /// none. Call after [`open`] has checked the library: the function's types are the ones
    /// that check covered (abi_stable's `RStr`, `RResult`, `RString`).
    pub fn spec_for_config(path: &Path) -> Result<Option<crate::SpecForConfig>, Refusal> {
        let library = abi_stable::library::RawLibrary::load_at(path).map_err(refusal)?;
        let mut name = crate::SPEC_FOR_CONFIG_SYMBOL.as_bytes().to_vec();
        name.push(0);
        // SAFETY: the symbol, when present, is the `extern "C"` function
        // `export_spec_for_config!` declares with exactly this type.
        let function = unsafe { library.get::<crate::SpecForConfig>(&name) }
            .ok()
            .map(|symbol| *symbol);
        // The library stays mapped for the life of the process, as `open` keeps it; this
        // handle only adds a reference, and dropping it would not unmap the library.
        std::mem::forget(library);
        Ok(function)
    }

    /// Opens the library at `path`, checks abi_stable's version and type-layout metadata, and
    /// returns its root module. The library stays mapped for the life of the process
    /// (abi_stable caches the root module; Rust libraries cannot be unloaded safely).
    pub fn open(path: &Path) -> Result<PluginModuleRef, Refusal> {
        let header = lib_header_from_path(path).map_err(refusal)?;
        header
            .init_root_module::<PluginModuleRef>()
            .map_err(refusal)
    }

    fn refusal(err: LibraryError) -> Refusal {
        match err {
            LibraryError::OpenError { err, .. } => Refusal::Open(err.to_string()),
            LibraryError::GetSymbolError { .. } => Refusal::NoEntryPoint,
            LibraryError::IncompatibleVersionNumber {
                expected_version,
                actual_version,
                ..
            } => Refusal::IncompatibleVersion {
                expected: expected_version.to_string(),
                found: actual_version.to_string(),
            },
            LibraryError::AbiInstability(_) => Refusal::Layout,
            other => Refusal::Other(other.to_string()),
        }
    }
}

/// The symbol name abi_stable looks up in a library. [`__export_root_module!`] uses it as a
/// literal; a test keeps the two in step.
pub const ROOT_MODULE_SYMBOL: &str = abi_stable::library::ROOT_MODULE_LOADER_NAME;

/// Items the export macro expands to in the plugin crate. Not part of the public API.
#[doc(hidden)]
pub mod export_support {
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, IntoRootModuleResult, LibHeader,
        RootModuleResult,
    };
    pub use abi_stable::prefix_type::PrefixTypeTrait;
    pub use abi_stable::sabi_trait::TD_Opaque;
    pub use abi_stable::std_types::{RBox, RErr, ROk, RResult, RStr, RString};
}

/// Exports `$constructor` (a `fn() -> PluginModuleRef`) as the library's root module: the
/// symbol abi_stable looks up, with the same shape as its `#[export_root_module]` attribute,
/// but with every path through this crate so plugins need no direct dependency on abi_stable.
/// `plugin-api`'s `export_stage!` and `export_source!` expand to it. The symbol name is a
/// literal (attributes take no constants); a test checks it against abi_stable's.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_root_module {
    ($constructor:expr) => {
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __STAGE_PLUGIN_ROOT_MODULE: $crate::export_support::LibHeader = {
            fn root_module() -> $crate::PluginModuleRef {
                $constructor()
            }
            extern "C" fn erased_root_module() -> $crate::export_support::RootModuleResult {
                $crate::export_support::__call_root_module_loader(root_module)
            }
            // SAFETY: this is the expansion abi_stable's own `#[export_root_module]` produces:
            // a header whose constructor returns the root module type it is declared with.
            unsafe {
                $crate::export_support::LibHeader::from_constructor::<$crate::PluginModuleRef>(
                    erased_root_module,
                    $crate::export_support::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_macro_uses_abi_stables_symbol_name() {
        // The literal in `__export_root_module!` must be the name abi_stable looks up.
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn layouts_are_declared_by_plugin_api() {
        // abi_stable refuses a library whose types were declared by a package of another
        // name; plugins built before this crate existed say `plugin-api` (see build.rs). Walk
        // every type the root module's layout check visits.
        use abi_stable::type_layout::TypeLayout;
        let mut ours = std::collections::BTreeSet::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<&'static TypeLayout> = vec![<PluginModuleRef as StableAbi>::LAYOUT];
        while let Some(layout) = stack.pop() {
            if !seen.insert(layout as *const TypeLayout) {
                continue;
            }
            let package = layout.package();
            assert!(
                ["plugin-api", "abi_stable", "core", "std"].contains(&package.as_str()),
                "{} declared by {package}",
                layout.name()
            );
            if package.as_str() == "plugin-api" {
                ours.insert(layout.name());
            }
            stack.extend(layout.shared_vars().type_layouts().iter().map(|f| f()));
        }
        for name in [
            "PluginModule",
            "StageObject_TO",
            "SourceObject_TO",
            "InputBatch",
            "InputRecord",
            "Span",
            "OutputBuffer",
            "OutputRecord",
            "OutputKey",
            "RecordFailure",
            "FailureKind",
            "SourceStatus",
        ] {
            assert!(ours.contains(name), "{name} not among {ours:?}");
        }
        let (name, version) = (
            <PluginModuleRef as RootModule>::NAME,
            <PluginModuleRef as RootModule>::VERSION_STRINGS,
        );
        assert_eq!(name, "stage_plugin");
        assert_eq!(version.to_string(), env!("CARGO_PKG_VERSION"));
    }

    // A plugin that exports the function under the constant's name.
    extern "C" fn fixed(_config: RStr<'_>) -> RResult<RString, RString> {
        RResult::ROk("{}".into())
    }
    export_spec_for_config!(fixed);

    #[test]
    fn spec_for_config_is_exported_under_the_constants_name() {
        assert_eq!(SPEC_FOR_CONFIG_SYMBOL, "stage_plugin_spec_for_config_v1");
        let call: SpecForConfig = stage_plugin_spec_for_config_v1;
        assert_eq!(call(RStr::from_str("{}")).unwrap().as_str(), "{}");
    }

    #[test]
    fn spans_read_their_bytes() {
        let span = Span { start: 2, len: 3 };
        assert_eq!(span.of(b"abcdefg"), b"cde");
    }
}
