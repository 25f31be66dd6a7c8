//! The traits plugin authors implement, and the types their code sees.

use crate::avro::{AvroError, Encoder, FromAvro, ToAvro};
use plugin_abi::{OutputBuffer, OutputKey, OutputRecord, Span, StageSpec};
use std::marker::PhantomData;
use std::time::Duration;

/// The error type stage code returns: anything that implements `std::error::Error`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The configuration the host was given for this stage (a TOML table in a pipeline file, or
/// `--config` JSON), as JSON.
#[derive(Debug, Clone, Default)]
pub struct Config(serde_json::Value);

impl Config {
    /// Wraps a JSON value.
    pub fn new(value: serde_json::Value) -> Self {
        Config(value)
    }

    /// Deserializes the whole configuration into the stage's own config type. An empty
    /// configuration deserializes as an empty object, so `#[serde(default)]` fields work.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, BoxError> {
        let value = match &self.0 {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            other => other.clone(),
        };
        serde_json::from_value(value).map_err(|e| format!("invalid stage config: {e}").into())
    }

    /// The raw JSON.
    pub fn json(&self) -> &serde_json::Value {
        &self.0
    }
}

/// One input record with its decoded value.
#[derive(Debug)]
pub struct Record<'a, T> {
    /// The decoded value.
    pub value: T,
    /// The record key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Partition it was consumed from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp in milliseconds since the epoch (-1 if none).
    pub timestamp_ms: i64,
}

/// A transforming stage: consumes the input topic, emits zero, one or many output records per
/// input record.
///
/// ```
/// use plugin_api::{BoxError, Config, Emitter, Record, Stage, StageSpec};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct In { postid: String }
/// #[derive(Serialize)]
/// struct Out { postid: String, ppm: f32 }
///
/// struct Scale;
///
/// impl Stage for Scale {
///     type Input = In;
///     type Output = Out;
///     fn spec() -> StageSpec {
///         StageSpec::stage("scale", "0.1.0")
///             .input("in_topic", "scale_g1")
///             .output("out_topic", 2, 1)
///             .output_schema(r#"{"type":"record","name":"out_topic_value","fields":[
///                 {"name":"postid","type":"string"},{"name":"ppm","type":"float"}]}"#)
///     }
///     fn new(_config: &Config) -> Result<Self, BoxError> { Ok(Scale) }
///     fn transform(&mut self, record: Record<'_, In>, out: &mut Emitter<'_, Out>) -> Result<(), BoxError> {
///         out.emit(Out { postid: record.value.postid, ppm: 100.0 })?;
///         Ok(())
///     }
/// }
/// plugin_api::export_stage!(Scale);
/// ```
pub trait Stage: Send + Sized + 'static {
    /// Input values: a serde type, or [`crate::GenericRecord`].
    type Input: FromAvro;
    /// Output values: a serde type, or [`crate::GenericRecord`].
    type Output: ToAvro;

    /// What the stage declares about itself.
    fn spec() -> StageSpec;

    /// Builds the stage from its configuration. An error here stops the host before it
    /// consumes anything.
    fn new(config: &Config) -> Result<Self, BoxError>;

    /// Transforms one record. An error (or a panic) marks this input record as failed: none of
    /// the outputs it emitted are produced, and the stage's error policy decides what happens.
    fn transform(
        &mut self,
        record: Record<'_, Self::Input>,
        out: &mut Emitter<'_, Self::Output>,
    ) -> Result<(), BoxError>;
}

/// What a source says after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// It may have more now: poll again.
    Ready,
    /// Nothing more for this long (the host sleeps, interruptibly).
    Wait(Duration),
    /// It has emitted everything; the host flushes and exits.
    Finished,
}

/// A source stage: produces records, polled by the host so it can be stopped at any time.
pub trait SourceStage: Send + Sized + 'static {
    /// Output values: a serde type, or [`crate::GenericRecord`].
    type Output: ToAvro;

    /// What the stage declares about itself.
    fn spec() -> StageSpec;

    /// Builds the source from its configuration.
    fn new(config: &Config) -> Result<Self, BoxError>;

    /// Emits at most `max` records. Must not block for long: return [`Poll::Wait`] instead.
    fn poll(&mut self, out: &mut Emitter<'_, Self::Output>, max: usize) -> Result<Poll, BoxError>;

    /// Where the source is after the records it has emitted so far, as text it can read back
    /// in [`SourceStage::restore`] (a file offset, a cursor, a count: the source decides).
    ///
    /// The host asks after every poll and stores the answer with that poll's records: in the
    /// same Kafka transaction under `--exactly-once`, and once the records are acknowledged
    /// otherwise. A restarted source then resumes after the last records that reached Kafka
    /// instead of starting over. `None` (the default) stores nothing.
    fn checkpoint(&self) -> Option<String> {
        None
    }

    /// Resumes from a checkpoint that an earlier run of this source returned. Called once,
    /// before the first poll, when the host found one. The default ignores it.
    fn restore(&mut self, checkpoint: &str) -> Result<(), BoxError> {
        let _ = checkpoint;
        Ok(())
    }
}

/// Emitting failed: the value did not match the output schema. Returned so `?` can stop the
/// transform; the host sees the record as an encode failure.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct EmitError(#[from] AvroError);

/// Where a stage writes its outputs. Values are encoded with the output schema straight into
/// the host's buffer.
pub struct Emitter<'a, O> {
    encoder: &'a Encoder,
    out: &'a mut OutputBuffer,
    input_index: u32,
    /// Whether `emit` without a key means "the input's key" (stages) or "no key" (sources).
    has_input: bool,
    emitted: usize,
    pub(crate) encode_failed: bool,
    _output: PhantomData<fn(O)>,
}

impl<'a, O: ToAvro> Emitter<'a, O> {
    pub(crate) fn new(
        encoder: &'a Encoder,
        out: &'a mut OutputBuffer,
        input_index: u32,
        has_input: bool,
    ) -> Self {
        Emitter {
            encoder,
            out,
            input_index,
            has_input,
            emitted: 0,
            encode_failed: false,
            _output: PhantomData,
        }
    }

    /// Emits `value` with the input record's key (no key, from a source).
    pub fn emit(&mut self, value: O) -> Result<(), EmitError> {
        let key = if self.has_input {
            OutputKey::SameAsInput
        } else {
            OutputKey::Null
        };
        self.push(key, &[], &value)
    }

    /// Emits `value` with the given key bytes.
    pub fn emit_keyed(&mut self, key: impl AsRef<[u8]>, value: O) -> Result<(), EmitError> {
        self.push(OutputKey::Given, key.as_ref(), &value)
    }

    /// Emits `value` with no key.
    pub fn emit_unkeyed(&mut self, value: O) -> Result<(), EmitError> {
        self.push(OutputKey::Null, &[], &value)
    }

    /// How many records this emitter has emitted.
    pub fn emitted(&self) -> usize {
        self.emitted
    }

    fn push(&mut self, key_kind: OutputKey, key: &[u8], value: &O) -> Result<(), EmitError> {
        let key_start = self.out.bytes.len();
        self.out.bytes.extend_from_slice(key);
        let value_start = self.out.bytes.len();
        if let Err(e) = value.write_avro(self.encoder, &mut self.out.bytes) {
            self.out.bytes.truncate(key_start);
            self.encode_failed = true;
            return Err(e.into());
        }
        let value_end = self.out.bytes.len();
        self.out.records.push(OutputRecord {
            input_index: self.input_index,
            key_kind,
            key: span(key_start, value_start),
            value: span(value_start, value_end),
        });
        self.emitted += 1;
        Ok(())
    }
}

fn span(start: usize, end: usize) -> Span {
    Span {
        start: start as u32,
        len: (end - start) as u32,
    }
}
