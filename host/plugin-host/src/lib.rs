//! The host side of the plugin boundary: load a plugin library, check it, construct its stage,
//! and call it with batches.
//!
//! [`Plugin::load`] opens a library and checks it (abi_stable's version and layout check,
//! then [`PLUGIN_API_VERSION`]), with every refusal folded into one line naming the file. The
//! host builds an [`InputBatchBuilder`], hands it to [`StageInstance::process`] (or polls a
//! [`SourceInstance`]), and reads the reusable [`OutputBuffer`] back through
//! [`OutputBufferExt`]; [`check_output`] refuses what does not fit the batch.
//!
//! This crate depends on `plugin-abi` only: the host links none of the plugin side (the
//! authors' traits, the Avro codec). A stage compiled into the host goes through the same
//! instances: `plugin-api`'s `linked` feature constructs it with
//! [`StageInstance::construct`] from its export adapter.

#![deny(missing_docs)]
#![warn(unreachable_pub)]

use plugin_abi::library::{self, Refusal};
use plugin_abi::std_types::{RResult, RSlice, RStr, RString};
use plugin_abi::{
    InputBatch, InputRecord, NewSource, NewStage, OutputKey, PluginModuleRef, SourceBox, Span,
    StageBox,
};
use std::path::{Path, PathBuf};

pub use plugin_abi::{
    FailureKind, OutputBuffer, SourceStatus, StageKind, StageSpec, TopicSpec, PLUGIN_API_VERSION,
};

/// Folds a message (libraries' errors often span lines) into one line for logs.
fn one_line(text: impl std::fmt::Display) -> String {
    text.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// abi_stable's refusal in one line, keeping the cause.
fn describe(refusal: Refusal) -> String {
    let text = match refusal {
        Refusal::Open(message) | Refusal::Other(message) => message,
        Refusal::NoEntryPoint => {
            "it is not a stage plugin (no plugin entry point; was it exported with `export_stage!` or `export_source!`?)".to_string()
        }
        Refusal::IncompatibleVersion { expected, found } => format!(
            "it was built against plugin-api {found}, which is incompatible with this host's plugin-api {expected}"
        ),
        Refusal::Layout => {
            "its interface types differ from this host's (abi_stable layout check failed); rebuild it against this host's plugin-api".to_string()
        }
    };
    one_line(text)
}

/// Why a plugin library could not be loaded. Each message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not exist or is not a readable regular file.
    #[error("cannot load plugin {path}: {reason}")]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The dynamic loader or abi_stable's checks refused the library.
    #[error("cannot load plugin {path}: {reason}")]
    Refused {
        /// The path given.
        path: PathBuf,
        /// Why, in one line.
        reason: String,
    },
    /// The plugin was built against another plugin API version.
    #[error("cannot load plugin {path}: it speaks plugin API version {found}, this host speaks version {expected}; rebuild the plugin against this host's plugin-api")]
    ApiVersion {
        /// The path given.
        path: PathBuf,
        /// The version the plugin was built with.
        found: u32,
        /// The version this host speaks.
        expected: u32,
    },
    /// The plugin's spec is unusable.
    #[error("cannot load plugin {path}: {reason}")]
    BadSpec {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A call into the plugin failed (returned an error or panicked).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

fn into_result<T>(r: RResult<T, RString>) -> Result<T, CallError> {
    r.into_result().map_err(|e| CallError(e.into_string()))
}

/// A loaded and checked plugin library.
pub struct Plugin {
    module: PluginModuleRef,
    spec: StageSpec,
    path: PathBuf,
}

impl Plugin {
    /// Opens the library at `path`, checks that it is a stage plugin built against a
    /// compatible plugin-api (abi_stable's layout check, then [`PLUGIN_API_VERSION`]), and
    /// reads its spec for an empty config. The library stays mapped until the process exits.
    pub fn load(path: &Path) -> Result<Plugin, LoadError> {
        Self::load_with_config(path, &serde_json::json!({}))
    }

    /// As [`Plugin::load`], with the spec the plugin declares for `config`: a bridge that runs
    /// a script (the Python stage) reads its topics, group and schemas from the script its
    /// config names. A plugin whose spec is fixed, or one built before specs could depend on
    /// the config, declares the same spec for every config.
    pub fn load_with_config(path: &Path, config: &serde_json::Value) -> Result<Plugin, LoadError> {
        let path = path.to_path_buf();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(LoadError::NotAFile {
                    path,
                    reason: "not a regular file".into(),
                })
            }
            Err(e) => {
                return Err(LoadError::NotAFile {
                    reason: e.to_string(),
                    path,
                })
            }
        }
        let module = library::open(&path).map_err(|refusal| LoadError::Refused {
            path: path.clone(),
            reason: describe(refusal),
        })?;
        let found = module.api_version();
        if found != PLUGIN_API_VERSION {
            return Err(LoadError::ApiVersion {
                path,
                found,
                expected: PLUGIN_API_VERSION,
            });
        }
        let spec_for_config =
            library::spec_for_config(&path).map_err(|refusal| LoadError::Refused {
                path: path.clone(),
                reason: describe(refusal),
            })?;
        let declared = match spec_for_config {
            Some(spec_for_config) => spec_for_config(RStr::from_str(&config.to_string())),
            None => module.spec_json()(),
        };
        let spec_json = into_result(declared).map_err(|e| LoadError::BadSpec {
            path: path.clone(),
            reason: format!("describing the stage failed: {e}"),
        })?;
        let spec: StageSpec = serde_json::from_str(&spec_json).map_err(|e| LoadError::BadSpec {
            path: path.clone(),
            reason: format!("unreadable spec: {e}"),
        })?;
        if spec.output_topic.name.is_empty() {
            return Err(LoadError::BadSpec {
                path,
                reason: "the stage declares no output topic".into(),
            });
        }
        Ok(Plugin { module, spec, path })
    }

    /// The stage's declaration.
    pub fn spec(&self) -> &StageSpec {
        &self.spec
    }

    /// The library's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Constructs the (transforming) stage with `config`.
    pub fn new_stage(&self, config: &serde_json::Value) -> Result<StageInstance, CallError> {
        StageInstance::construct(self.module.new_stage(), config)
    }

    /// Constructs the source stage with `config`.
    pub fn new_source(&self, config: &serde_json::Value) -> Result<SourceInstance, CallError> {
        SourceInstance::construct(self.module.new_source(), config)
    }
}

/// A constructed transforming stage.
pub struct StageInstance(StageBox);

impl StageInstance {
    /// Constructs a stage with `new_stage` and `config`: a loaded plugin's constructor (what
    /// [`Plugin::new_stage`] calls), or the export adapter of a stage compiled into this
    /// binary (`plugin_api::linked::stage`). Either way the stage sits behind the same trait
    /// object, so the runner drives a linked stage exactly as it drives a plugin; this is how
    /// the cost of loading a stage as a plugin is measured, and how authors' tests run.
    pub fn construct(new_stage: NewStage, config: &serde_json::Value) -> Result<Self, CallError> {
        let json = config.to_string();
        into_result(new_stage(RStr::from_str(&json))).map(StageInstance)
    }

    /// Tells the stage about writer schema `id`; call once per id before its first record.
    pub fn add_writer_schema(&mut self, id: u32, schema_json: &str) -> Result<(), CallError> {
        into_result(self.0.add_writer_schema(id, RStr::from_str(schema_json)))
    }

    /// Runs the stage over `batch`. `out` is cleared first. Per-record failures are in
    /// `out`; an `Err` means the whole call failed, also when what the plugin wrote into
    /// `out` does not fit `batch` (see [`check_output`]).
    pub fn process(
        &mut self,
        batch: &InputBatchBuilder,
        out: &mut OutputBuffer,
    ) -> Result<(), CallError> {
        out.clear();
        into_result(self.0.process(batch.as_abi(), out))?;
        check_output(out, batch.len())
    }
}

/// Checks that every output and failure a plugin wrote refers to an input record of the
/// batch (`inputs` of them; a source's outputs all refer to index 0) and to bytes inside the
/// buffer. The host reads the buffer by these numbers, so a plugin that breaks the contract
/// (by a bug, or built by hand against the ABI) is refused with an error instead of making
/// the host index out of bounds.
pub fn check_output(out: &OutputBuffer, inputs: usize) -> Result<(), CallError> {
    let bytes = out.bytes.len();
    let fits = |span: &Span| span.start as usize + span.len as usize <= bytes;
    for (n, record) in out.records.iter().enumerate() {
        let index = record.input_index as usize;
        if index >= inputs.max(1) {
            return Err(CallError(format!(
                "the plugin returned output {n} for input record {index} of a batch of {inputs}"
            )));
        }
        if !fits(&record.value) || (record.key_kind == OutputKey::Given && !fits(&record.key)) {
            return Err(CallError(format!(
                "the plugin returned output {n} with bytes outside its buffer"
            )));
        }
    }
    if let Some(failure) = out
        .failures
        .iter()
        .find(|f| f.input_index as usize >= inputs)
    {
        return Err(CallError(format!(
            "the plugin reported a failure of input record {} of a batch of {inputs}",
            failure.input_index
        )));
    }
    Ok(())
}

/// A constructed source stage.
pub struct SourceInstance(SourceBox);

impl SourceInstance {
    /// Constructs a source with `new_source` and `config`: a loaded plugin's constructor, or
    /// the export adapter of a source compiled into this binary (as
    /// [`StageInstance::construct`]).
    pub fn construct(new_source: NewSource, config: &serde_json::Value) -> Result<Self, CallError> {
        let json = config.to_string();
        into_result(new_source(RStr::from_str(&json))).map(SourceInstance)
    }

    /// Asks the source for at most `max` records. `out` is cleared first.
    pub fn poll(&mut self, max: u32, out: &mut OutputBuffer) -> Result<SourceStatus, CallError> {
        out.clear();
        let status = into_result(self.0.poll(max, out))?;
        check_output(out, 1)?;
        Ok(status)
    }

    /// The source's checkpoint after its last poll (`None`: it keeps none).
    pub fn checkpoint(&self) -> Result<Option<String>, CallError> {
        into_result(self.0.checkpoint()).map(|c| c.into_option().map(String::from))
    }

    /// Resumes the source from a checkpoint of an earlier run.
    pub fn restore(&mut self, checkpoint: &str) -> Result<(), CallError> {
        into_result(self.0.restore(RStr::from_str(checkpoint)))
    }
}

/// Input metadata the host fills in for each record.
#[derive(Debug, Clone, Copy)]
pub struct RecordPosition {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms (-1 if none).
    pub timestamp_ms: i64,
}

/// A reusable input batch: records are appended, then the batch is handed to the plugin.
#[derive(Default)]
pub struct InputBatchBuilder {
    bytes: Vec<u8>,
    records: Vec<InputRecord>,
}

impl InputBatchBuilder {
    /// Empties the batch, keeping capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Appends a record: its key (if any), its Avro datum without framing, and the id of the
    /// schema it was written with.
    pub fn push(&mut self, key: Option<&[u8]>, datum: &[u8], schema_id: u32, at: RecordPosition) {
        let key_span = self.append(key.unwrap_or_default());
        let value_span = self.append(datum);
        self.records.push(InputRecord {
            key: key_span,
            has_key: key.is_some(),
            value: value_span,
            value_schema_id: schema_id,
            partition: at.partition,
            offset: at.offset,
            timestamp_ms: at.timestamp_ms,
        });
    }

    /// Keeps only the records whose position `keep` accepts, in order. Their bytes stay
    /// where they are (the spans remain valid); the buffer is reclaimed by the next `clear`.
    pub fn retain(&mut self, mut keep: impl FnMut(RecordPosition) -> bool) {
        self.records.retain(|r| {
            keep(RecordPosition {
                partition: r.partition,
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
            })
        });
    }

    /// The key of record `index` (`None` for a null key).
    pub fn key(&self, index: usize) -> Option<&[u8]> {
        let r = &self.records[index];
        r.has_key.then(|| r.key.of(&self.bytes))
    }

    /// Position of record `index`.
    pub fn position(&self, index: usize) -> RecordPosition {
        let r = &self.records[index];
        RecordPosition {
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
        }
    }

    fn append(&mut self, data: &[u8]) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        Span {
            start: start as u32,
            len: data.len() as u32,
        }
    }

    fn as_abi(&self) -> InputBatch<'_> {
        InputBatch {
            bytes: RSlice::from_slice(&self.bytes),
            records: RSlice::from_slice(&self.records),
        }
    }
}

/// One output as the host reads it.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// Index of the input record it derives from (0 for sources).
    pub input_index: usize,
    /// The key to produce with.
    pub key: Option<&'a [u8]>,
    /// The Avro datum (no framing).
    pub value: &'a [u8],
}

/// One failed input record as the host reads it.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// Index of the input record.
    pub input_index: usize,
    /// The kind of failure.
    pub kind: FailureKind,
    /// What went wrong, one line.
    pub message: &'a str,
}

/// Reading results out of an [`OutputBuffer`].
pub trait OutputBufferExt {
    /// The outputs, with `SameAsInput` keys resolved against `batch` (pass `None` for a source).
    fn outputs<'a>(
        &'a self,
        batch: Option<&'a InputBatchBuilder>,
    ) -> impl Iterator<Item = Output<'a>> + 'a;
    /// The failed input records.
    fn failures(&self) -> impl Iterator<Item = Failure<'_>>;
}

impl OutputBufferExt for OutputBuffer {
    fn outputs<'a>(
        &'a self,
        batch: Option<&'a InputBatchBuilder>,
    ) -> impl Iterator<Item = Output<'a>> + 'a {
        let bytes = self.bytes.as_slice();
        self.records.iter().map(move |r| {
            let input_index = r.input_index as usize;
            let key = match r.key_kind {
                OutputKey::SameAsInput => batch.and_then(|b| b.key(input_index)),
                OutputKey::Given => Some(r.key.of(bytes)),
                OutputKey::Null => None,
            };
            Output {
                input_index,
                key,
                value: r.value.of(bytes),
            }
        })
    }

    fn failures(&self) -> impl Iterator<Item = Failure<'_>> {
        self.failures.iter().map(|f| Failure {
            input_index: f.input_index as usize,
            kind: f.kind,
            message: f.message.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_abi::{OutputRecord, RecordFailure};

    fn at(offset: i64) -> RecordPosition {
        RecordPosition {
            partition: 3,
            offset,
            timestamp_ms: -1,
        }
    }

    /// A buffer as a plugin would fill it: `bytes`, then one record per entry.
    fn output(bytes: &[u8], records: &[(u32, OutputKey, Span, Span)]) -> OutputBuffer {
        let mut out = OutputBuffer::default();
        out.bytes.extend_from_slice(bytes);
        for &(input_index, key_kind, key, value) in records {
            out.records.push(OutputRecord {
                input_index,
                key_kind,
                key,
                value,
            });
        }
        out
    }

    fn span(start: u32, len: u32) -> Span {
        Span { start, len }
    }

    #[test]
    fn a_batch_keeps_keys_datums_and_positions() {
        let mut batch = InputBatchBuilder::default();
        assert!(batch.is_empty());
        batch.push(Some(b"k0"), b"v0", 7, at(10));
        batch.push(None, b"v1", 7, at(11));
        batch.push(Some(b""), b"v2", 8, at(12));
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.key(0), Some(&b"k0"[..]));
        assert_eq!(batch.key(1), None);
        assert_eq!(
            batch.key(2),
            Some(&b""[..]),
            "an empty key is not a null key"
        );
        assert_eq!(batch.position(1).offset, 11);
        assert_eq!(batch.position(1).partition, 3);
        let abi = batch.as_abi();
        assert_eq!(abi.records[2].value_schema_id, 8);
        assert_eq!(abi.records[1].value.of(abi.bytes.as_slice()), b"v1");
        batch.clear();
        assert!(batch.is_empty());
    }

    #[test]
    fn outputs_resolve_their_keys() {
        let mut batch = InputBatchBuilder::default();
        batch.push(Some(b"in-key"), b"x", 1, at(0));
        let out = output(
            b"kAvB",
            &[
                (0, OutputKey::SameAsInput, span(0, 0), span(1, 1)),
                (0, OutputKey::Given, span(0, 1), span(3, 1)),
                (0, OutputKey::Null, span(0, 0), span(2, 1)),
            ],
        );
        check_output(&out, batch.len()).unwrap();
        let outputs: Vec<_> = out.outputs(Some(&batch)).collect();
        assert_eq!(outputs[0].key, Some(&b"in-key"[..]));
        assert_eq!(outputs[0].value, b"A");
        assert_eq!(outputs[1].key, Some(&b"k"[..]));
        assert_eq!(outputs[1].value, b"B");
        assert_eq!(outputs[2].key, None);
        // A source's outputs have no input to take a key from.
        assert_eq!(out.outputs(None).next().unwrap().key, None);
    }

    #[test]
    fn output_that_does_not_fit_the_batch_is_refused() {
        let beyond = output(b"ab", &[(1, OutputKey::Null, span(0, 0), span(0, 1))]);
        let err = check_output(&beyond, 1).unwrap_err();
        assert!(err.0.contains("input record 1 of a batch of 1"), "{err}");

        let outside = output(b"ab", &[(0, OutputKey::Null, span(0, 0), span(1, 2))]);
        let err = check_output(&outside, 1).unwrap_err();
        assert!(err.0.contains("bytes outside its buffer"), "{err}");

        let bad_key = output(b"ab", &[(0, OutputKey::Given, span(2, 1), span(0, 1))]);
        assert!(check_output(&bad_key, 1).is_err());
        // The key span is not read unless the key is given.
        let unused_key = output(b"ab", &[(0, OutputKey::Null, span(9, 9), span(0, 1))]);
        check_output(&unused_key, 1).unwrap();

        let mut failed = OutputBuffer::default();
        failed.failures.push(RecordFailure {
            input_index: 2,
            kind: FailureKind::Transform,
            message: "no".into(),
        });
        let err = check_output(&failed, 2).unwrap_err();
        assert!(err.0.contains("failure of input record 2"), "{err}");
        assert_eq!(failed.failures().next().unwrap().message, "no");

        // A source's outputs all refer to index 0, with no input records at all.
        let source = output(b"a", &[(0, OutputKey::Null, span(0, 0), span(0, 1))]);
        check_output(&source, 0).unwrap();
    }

    #[test]
    fn files_that_are_not_plugins_are_refused_in_one_line_naming_them() {
        let dir = std::env::temp_dir().join(format!("plugin-host-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let missing = dir.join("missing.so");
        let err = Plugin::load(&missing).err().unwrap();
        assert!(matches!(err, LoadError::NotAFile { .. }), "{err}");

        let err = Plugin::load(&dir).err().unwrap();
        assert!(err.to_string().contains("not a regular file"), "{err}");

        let text = dir.join("libtext.so");
        std::fs::write(&text, "this is text, not ELF").unwrap();
        let err = Plugin::load(&text).err().unwrap();
        assert!(matches!(err, LoadError::Refused { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(text.to_str().unwrap()), "{message}");
        assert!(!message.contains('\n'), "{message}");

        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refusals_are_worded_for_the_user() {
        assert_eq!(
            describe(Refusal::Open("cannot open:\n   file too short".into())),
            "cannot open: file too short"
        );
        assert!(describe(Refusal::NoEntryPoint).contains("not a stage plugin"));
        let version = describe(Refusal::IncompatibleVersion {
            expected: "0.1.0".into(),
            found: "0.2.0".into(),
        });
        assert!(
            version.contains("built against plugin-api 0.2.0")
                && version.contains("this host's plugin-api 0.1.0"),
            "{version}"
        );
        assert!(describe(Refusal::Layout).contains("layout check failed"));
    }
}
