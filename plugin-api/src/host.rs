//! Host side of the boundary: load a plugin library, check it, construct its stage, and call
//! it with batches.
//!
//! The host never sees abi_stable types: it builds an [`InputBatchBuilder`], hands it to
//! [`StageInstance::process`], and reads the reusable [`OutputBuffer`] back.

use crate::abi::{
    loading, InputBatch, InputRecord, OutputBuffer, OutputKey, PluginModuleRef, RResult, RSlice,
    RStr, RString, SourceBox, Span, StageBox,
};
use crate::spec::StageSpec;
use crate::stage::Stage;
use crate::PLUGIN_API_VERSION;
use std::path::{Path, PathBuf};

pub use crate::abi::{FailureKind, SourceStatus};

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
    /// reads its spec. The library stays mapped until the process exits.
    pub fn load(path: &Path) -> Result<Plugin, LoadError> {
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
        let module = loading::open(&path).map_err(|reason| LoadError::Refused {
            path: path.clone(),
            reason,
        })?;
        let found = module.api_version();
        if found != PLUGIN_API_VERSION {
            return Err(LoadError::ApiVersion {
                path,
                found,
                expected: PLUGIN_API_VERSION,
            });
        }
        let spec_json = into_result(module.spec_json()()).map_err(|e| LoadError::BadSpec {
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
        let json = config.to_string();
        into_result(self.module.new_stage()(RStr::from_str(&json))).map(StageInstance)
    }

    /// Constructs the source stage with `config`.
    pub fn new_source(&self, config: &serde_json::Value) -> Result<SourceInstance, CallError> {
        let json = config.to_string();
        into_result(self.module.new_source()(RStr::from_str(&json))).map(SourceInstance)
    }
}

/// A constructed transforming stage.
pub struct StageInstance(StageBox);

impl StageInstance {
    /// Constructs stage `S`, compiled into this binary, with `config`: no library is loaded,
    /// but the stage sits behind the same trait object a plugin returns, so the runner drives
    /// it exactly as it drives a plugin. This is how the cost of loading a stage as a plugin
    /// is measured (the benchmarks run the same stage both ways).
    pub fn linked<S: Stage>(config: &serde_json::Value) -> Result<StageInstance, CallError> {
        let json = config.to_string();
        into_result(crate::export::new_stage::<S>(RStr::from_str(&json))).map(StageInstance)
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
    let fits = |span: &crate::abi::Span| span.start as usize + span.len as usize <= bytes;
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
