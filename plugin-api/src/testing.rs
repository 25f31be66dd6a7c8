//! Running a stage in a unit test, without Kafka or a plugin library.
//!
//! Inputs are given as JSON, encoded to Avro with the stage's input schema, decoded by the same
//! codec the plugin uses, passed to `transform`, and the outputs are encoded with the output
//! schema and decoded back to JSON. A test therefore catches what a real run would: a field
//! the schema lacks, a type that does not fit, an output that does not match its schema.
//!
//! ```
//! # use plugin_api::{BoxError, Config, Emitter, Record, Stage, StageSpec};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Deserialize)] struct In { n: i64 }
//! # #[derive(Serialize)] struct Out { n: i64 }
//! # struct Double;
//! # impl Stage for Double {
//! #     type Input = In; type Output = Out;
//! #     fn spec() -> StageSpec {
//! #         StageSpec::stage("double", "0.1.0").input("a", "g").output("b", 1, 1)
//! #             .input_schema(r#"{"type":"record","name":"a","fields":[{"name":"n","type":"long"}]}"#)
//! #             .output_schema(r#"{"type":"record","name":"b","fields":[{"name":"n","type":"long"}]}"#)
//! #     }
//! #     fn new(_: &Config) -> Result<Self, BoxError> { Ok(Double) }
//! #     fn transform(&mut self, r: Record<'_, In>, out: &mut Emitter<'_, Out>) -> Result<(), BoxError> {
//! #         out.emit(Out { n: r.value.n * 2 })?; Ok(())
//! #     }
//! # }
//! use serde_json::json;
//! let outputs = plugin_api::testing::run_stage::<Double>(json!({}), vec![json!({"n": 21})]).unwrap();
//! assert_eq!(outputs, vec![json!({"n": 42})]);
//! ```
//!
//! This module does not cross the plugin boundary and changes nothing in it.

use crate::avro::{parse_schema, Decoder, Encoder};
use crate::one_line;
use crate::stage::{Config, Emitter, Poll, Record, SourceStage, Stage};
use apache_avro::{types::Value, Schema};
use plugin_abi::OutputBuffer;

/// Why a test run failed, as one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TestError {
    /// A schema is missing or invalid, or an input does not fit the input schema.
    #[error("{0}")]
    Setup(String),
    /// The stage's constructor failed.
    #[error("stage constructor failed: {0}")]
    Constructor(String),
    /// Input `index` failed in the codec or in `transform`.
    #[error("input {index}: {message}")]
    Record {
        /// Index of the input.
        index: usize,
        /// What went wrong.
        message: String,
    },
}

/// Encodes a JSON value as one Avro datum of `schema`. Objects become records (missing fields
/// take their defaults), and values are fitted to unions, so `{"title": "x"}` fits a
/// `["string"]` field.
pub fn encode_json(schema: &Schema, json: &serde_json::Value) -> Result<Vec<u8>, String> {
    let value = Value::from(json.clone())
        .resolve(schema)
        .map_err(|e| one_line(format!("does not fit the schema: {e}")))?;
    apache_avro::to_avro_datum(schema, value).map_err(one_line)
}

/// Decodes one Avro datum of `schema` to JSON (unions show as their value).
pub fn decode_json(schema: &Schema, mut datum: &[u8]) -> Result<serde_json::Value, String> {
    let value = apache_avro::from_avro_datum(schema, &mut datum, None).map_err(one_line)?;
    to_json(value)
}

fn to_json(value: Value) -> Result<serde_json::Value, String> {
    let unwrapped = match value {
        Value::Union(_, inner) => return to_json(*inner),
        Value::Record(fields) => {
            let mut map = serde_json::Map::new();
            for (name, v) in fields {
                map.insert(name, to_json(v)?);
            }
            return Ok(serde_json::Value::Object(map));
        }
        Value::Array(items) => {
            return items
                .into_iter()
                .map(to_json)
                .collect::<Result<Vec<_>, _>>()
                .map(serde_json::Value::Array)
        }
        Value::Map(items) => {
            let mut map = serde_json::Map::new();
            for (name, v) in items {
                map.insert(name, to_json(v)?);
            }
            return Ok(serde_json::Value::Object(map));
        }
        other => other,
    };
    serde_json::Value::try_from(unwrapped).map_err(one_line)
}

/// Runs stage `S` with `config` over `inputs` (JSON values of its declared input schema) and
/// returns every output, as JSON, in order. The first failing input ends the run with its
/// index and cause.
pub fn run_stage<S: Stage>(
    config: serde_json::Value,
    inputs: Vec<serde_json::Value>,
) -> Result<Vec<serde_json::Value>, TestError> {
    let writer = S::spec().input_value_schema.ok_or_else(|| {
        TestError::Setup(
            "the stage declares no input schema: use run_stage_with_schema and give the upstream's"
                .into(),
        )
    })?;
    run_stage_with_schema::<S>(config, &writer, inputs)
}

/// As [`run_stage`], with inputs written with `writer_schema` (e.g. the upstream stage's
/// output schema), resolved to the stage's reader schema as in a real run.
pub fn run_stage_with_schema<S: Stage>(
    config: serde_json::Value,
    writer_schema: &str,
    inputs: Vec<serde_json::Value>,
) -> Result<Vec<serde_json::Value>, TestError> {
    let spec = S::spec();
    let setup = |e: crate::avro::AvroError| TestError::Setup(e.to_string());
    let writer = parse_schema(writer_schema).map_err(setup)?;
    let mut decoder = Decoder::new(spec.input_value_schema.as_deref()).map_err(setup)?;
    decoder.add_writer_schema(1, writer_schema).map_err(setup)?;
    let output_schema = parse_schema(&spec.output_value_schema).map_err(setup)?;
    let encoder = Encoder::new(&spec.output_value_schema).map_err(setup)?;
    let mut stage =
        S::new(&Config::new(config)).map_err(|e| TestError::Constructor(e.to_string()))?;
    let mut outputs = Vec::new();
    for (index, json) in inputs.iter().enumerate() {
        let failed = |message: String| TestError::Record { index, message };
        let datum = encode_json(&writer, json).map_err(failed)?;
        let value = decoder
            .decode_into::<S::Input>(1, &datum)
            .map_err(|e| failed(e.to_string()))?;
        let record = Record {
            value,
            key: None,
            partition: 0,
            offset: index as i64,
            timestamp_ms: -1,
        };
        let mut buffer = OutputBuffer::default();
        let mut emitter = Emitter::new(&encoder, &mut buffer, index as u32, true);
        stage
            .transform(record, &mut emitter)
            .map_err(|e| failed(format!("transform failed: {e}")))?;
        outputs.extend(decode_outputs(&output_schema, &buffer).map_err(failed)?);
    }
    Ok(outputs)
}

/// Polls source `S` until it finishes or has emitted `max` records, and returns the records
/// as JSON. Waits the source asks for are skipped, so a rate-limited source runs at once.
pub fn run_source<S: SourceStage>(
    config: serde_json::Value,
    max: usize,
) -> Result<Vec<serde_json::Value>, TestError> {
    let spec = S::spec();
    let setup = |e: crate::avro::AvroError| TestError::Setup(e.to_string());
    let output_schema = parse_schema(&spec.output_value_schema).map_err(setup)?;
    let encoder = Encoder::new(&spec.output_value_schema).map_err(setup)?;
    let mut source =
        S::new(&Config::new(config)).map_err(|e| TestError::Constructor(e.to_string()))?;
    let mut outputs = Vec::new();
    while outputs.len() < max {
        let mut buffer = OutputBuffer::default();
        let mut emitter = Emitter::new(&encoder, &mut buffer, 0, false);
        let poll = source
            .poll(&mut emitter, max - outputs.len())
            .map_err(|e| TestError::Record {
                index: outputs.len(),
                message: format!("poll failed: {e}"),
            })?;
        let index = outputs.len();
        outputs.extend(
            decode_outputs(&output_schema, &buffer)
                .map_err(|message| TestError::Record { index, message })?,
        );
        match poll {
            Poll::Finished => break,
            Poll::Wait(d) => std::thread::sleep(d.min(std::time::Duration::from_millis(10))),
            Poll::Ready => {}
        }
    }
    outputs.truncate(max);
    Ok(outputs)
}

fn decode_outputs(
    schema: &Schema,
    buffer: &OutputBuffer,
) -> Result<Vec<serde_json::Value>, String> {
    buffer
        .records
        .iter()
        .map(|r| decode_json(schema, r.value.of(&buffer.bytes)))
        .collect()
}
