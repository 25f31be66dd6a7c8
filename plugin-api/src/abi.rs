//! The binary interface between the host and a plugin library.
//!
//! This is the only module of the workspace that names `abi_stable`. Everything that crosses
//! the boundary is defined here, and it is deliberately small: byte buffers, spans into them,
//! plain `#[repr(C)]` records, and two trait objects. Typed values (serde structs, Avro
//! `Value`s) never cross, so the host and a plugin may be built with different versions of
//! serde or apache-avro.
//!
//! Memory rule: the host owns the input batch and the [`OutputBuffer`]; the plugin only
//! borrows them for the duration of a call. `RVec` carries its own allocator vtable, so the
//! plugin growing a host-owned buffer allocates with the host's allocator.

// abi_stable's `#[sabi_trait]` expands to impls of its own traits inside consts.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RVec},
    StableAbi,
};

pub(crate) use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString};

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
    /// [`crate::PLUGIN_API_VERSION`] as the plugin was built.
    pub api_version: u32,
    /// The stage's [`crate::StageSpec`] as JSON.
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

/// The symbol name abi_stable looks up in a library. The export macro uses it as a literal;
/// a test keeps the two in step.
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

/// Host side: open a library and check it, in one call.
pub(crate) mod loading {
    use super::PluginModuleRef;
    use abi_stable::library::{lib_header_from_path, LibraryError};
    use std::path::Path;

    /// Opens the library at `path`, checks abi_stable's version and type-layout metadata,
    /// and returns its root module. The library stays mapped for the life of the process.
    pub(crate) fn open(path: &Path) -> Result<PluginModuleRef, String> {
        let header = lib_header_from_path(path).map_err(describe)?;
        header
            .init_root_module::<PluginModuleRef>()
            .map_err(describe)
    }

    /// abi_stable's messages span several lines and repeat the path; keep the cause.
    fn describe(err: LibraryError) -> String {
        let text = match &err {
            LibraryError::OpenError { err, .. } => err.to_string(),
            LibraryError::GetSymbolError { .. } => {
                "it is not a stage plugin (no plugin entry point; was it exported with `export_stage!` or `export_source!`?)".to_string()
            }
            LibraryError::IncompatibleVersionNumber {
                expected_version,
                actual_version,
                ..
            } => format!(
                "it was built against plugin-api {actual_version}, which is incompatible with this host's plugin-api {expected_version}"
            ),
            LibraryError::AbiInstability(_) => {
                "its interface types differ from this host's (abi_stable layout check failed); rebuild it against this host's plugin-api".to_string()
            }
            other => other.to_string(),
        };
        crate::one_line(text)
    }
}
