//! Running a stage in a unit test, without Kafka or a plugin library (feature `testing`).
//!
//! Inputs are given as JSON and encoded to Avro with the stage's input schema. The stage is
//! constructed as [`crate::linked`] does it: behind the export adapter a plugin library
//! exports, driven by plugin-host's instance. So each input is decoded by the codec the plugin
//! uses, passed to `transform` with panics caught, the outputs are encoded with the output
//! schema and checked by the host's [`check_output`](plugin_host::check_output), and then
//! decoded back to JSON. A test therefore catches what a real run would: a field the schema
//! lacks, a type that does not fit, an output that does not match its schema, a panic.
//!
//! Add the feature to a plugin crate's dev-dependencies only:
//!
//! ```toml
//! [dev-dependencies]
//! plugin-api = { path = "../../plugin-api", features = ["testing"] }
//! ```
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

use crate::linked;
use crate::one_line;
use crate::stage::{SourceStage, Stage};
use apache_avro::{types::Value, Schema};
use plugin_host::{
    CallError, FailureKind, InputBatchBuilder, OutputBuffer, OutputBufferExt, RecordPosition,
    SourceStatus,
};
use std::time::Duration;

/// The schema id test inputs are written with (there is no registry).
const INPUT_SCHEMA_ID: u32 = 1;

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
///
/// Each input is one batch of one record, so the stage sees the inputs up to the first
/// failing one and no further.
pub fn run_stage_with_schema<S: Stage>(
    config: serde_json::Value,
    writer_schema: &str,
    inputs: Vec<serde_json::Value>,
) -> Result<Vec<serde_json::Value>, TestError> {
    let spec = S::spec();
    let writer = schema(writer_schema)?;
    if let Some(reader) = &spec.input_value_schema {
        schema(reader)?;
    }
    let output_schema = schema(&spec.output_value_schema)?;
    let mut stage = linked::stage::<S>(&config).map_err(constructor_failed)?;
    stage
        .add_writer_schema(INPUT_SCHEMA_ID, writer_schema)
        .map_err(|e| TestError::Setup(e.to_string()))?;
    let mut batch = InputBatchBuilder::default();
    let mut out = OutputBuffer::default();
    let mut outputs = Vec::new();
    for (index, json) in inputs.iter().enumerate() {
        let failed = |message: String| TestError::Record { index, message };
        let datum = encode_json(&writer, json).map_err(failed)?;
        batch.clear();
        let at = RecordPosition {
            partition: 0,
            offset: index as i64,
            timestamp_ms: -1,
        };
        batch.push(None, &datum, INPUT_SCHEMA_ID, at);
        stage
            .process(&batch, &mut out)
            .map_err(|e| failed(e.to_string()))?;
        if let Some(failure) = out.failures().next() {
            return Err(failed(record_failure(failure.kind, failure.message)));
        }
        outputs.extend(decode_outputs(&output_schema, &out).map_err(failed)?);
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
    let output_schema = schema(&spec.output_value_schema)?;
    let mut source = linked::source::<S>(&config).map_err(constructor_failed)?;
    let mut out = OutputBuffer::default();
    let mut outputs = Vec::new();
    while outputs.len() < max {
        let index = outputs.len();
        let failed = |message: String| TestError::Record { index, message };
        let want = u32::try_from(max - index).unwrap_or(u32::MAX);
        let status = source
            .poll(want, &mut out)
            .map_err(|e| failed(e.to_string()))?;
        outputs.extend(decode_outputs(&output_schema, &out).map_err(failed)?);
        match status {
            SourceStatus::Finished => break,
            SourceStatus::WaitMillis(ms) => {
                std::thread::sleep(Duration::from_millis(ms).min(Duration::from_millis(10)))
            }
            SourceStatus::Ready => {}
        }
    }
    outputs.truncate(max);
    Ok(outputs)
}

/// Parses a schema as the plugin will, so a bad one is a setup error before the stage runs.
fn schema(json: &str) -> Result<Schema, TestError> {
    crate::avro::parse_schema(json).map_err(|e| TestError::Setup(e.to_string()))
}

/// The adapter's constructor error, without the prefix [`TestError::Constructor`] adds.
fn constructor_failed(error: CallError) -> TestError {
    let message = error.0;
    let message = ["stage constructor failed: ", "source constructor failed: "]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .map_or(message.clone(), str::to_string);
    TestError::Constructor(message)
}

/// A per-record failure as the adapter reported it, said the way a test reads it.
fn record_failure(kind: FailureKind, message: &str) -> String {
    match kind {
        FailureKind::Decode => message.to_string(),
        FailureKind::Transform | FailureKind::Encode => format!("transform failed: {message}"),
        FailureKind::Panic => format!("transform {message}"),
    }
}

fn decode_outputs(schema: &Schema, out: &OutputBuffer) -> Result<Vec<serde_json::Value>, String> {
    out.outputs(None)
        .map(|output| decode_json(schema, output.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxError, Config, Emitter, Poll, Record, StageSpec};
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    const STAGE_ONE: &str = include_str!("../../schemas/stage_one.json");
    const STAGE_TWO: &str = include_str!("../../schemas/stage_two.json");

    #[derive(Deserialize)]
    struct Post {
        postid: String,
        title: String,
    }

    #[derive(Serialize)]
    struct Scored {
        postid: String,
        ppm: f32,
    }

    /// An output the stage-two schema lacks a field for: fails to encode.
    #[derive(Serialize)]
    struct Misfit {
        postid: String,
    }

    /// Scores posts; misbehaves on titles that say how.
    struct Scorer {
        ppm: f32,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Settings {
        ppm: f32,
        fail: bool,
        panic: bool,
    }

    impl crate::Stage for Scorer {
        type Input = Post;
        type Output = Scored;

        fn spec() -> StageSpec {
            StageSpec::stage("scorer", "0.1.0")
                .input("posts", "scorer_g1")
                .output("scored", 1, 1)
                .input_schema(STAGE_ONE)
                .output_schema(STAGE_TWO)
        }

        fn new(config: &Config) -> Result<Self, BoxError> {
            let settings: Settings = config.parse()?;
            if settings.fail {
                return Err("refused, as configured".into());
            }
            if settings.panic {
                panic!("constructor panics, as configured");
            }
            Ok(Scorer { ppm: settings.ppm })
        }

        fn transform(
            &mut self,
            record: Record<'_, Post>,
            out: &mut Emitter<'_, Scored>,
        ) -> Result<(), BoxError> {
            match record.value.title.as_str() {
                "error" => return Err("no score for this one".into()),
                "panic" => panic!("transform panics on {}", record.value.postid),
                "twice" => {
                    out.emit(Scored {
                        postid: record.value.postid.clone(),
                        ppm: self.ppm,
                    })?;
                }
                _ => {}
            }
            out.emit(Scored {
                postid: record.value.postid,
                ppm: self.ppm,
            })?;
            Ok(())
        }
    }

    /// Emits something its output schema does not describe.
    struct Broken;

    impl crate::Stage for Broken {
        type Input = Post;
        type Output = Misfit;

        fn spec() -> StageSpec {
            Scorer::spec()
        }

        fn new(_: &Config) -> Result<Self, BoxError> {
            Ok(Broken)
        }

        fn transform(
            &mut self,
            record: Record<'_, Post>,
            out: &mut Emitter<'_, Misfit>,
        ) -> Result<(), BoxError> {
            out.emit(Misfit {
                postid: record.value.postid,
            })?;
            Ok(())
        }
    }

    /// Counts to `records`, asking for a wait after each record.
    struct Counter {
        next: u32,
        records: u32,
    }

    impl crate::SourceStage for Counter {
        type Output = Scored;

        fn spec() -> StageSpec {
            StageSpec::source("counter", "0.1.0")
                .output("counted", 1, 1)
                .output_schema(STAGE_TWO)
        }

        fn new(config: &Config) -> Result<Self, BoxError> {
            let records = config.json()["records"].as_u64().unwrap_or(3) as u32;
            Ok(Counter { next: 0, records })
        }

        fn poll(&mut self, out: &mut Emitter<'_, Scored>, _max: usize) -> Result<Poll, BoxError> {
            if self.next == self.records {
                return Ok(Poll::Finished);
            }
            if self.next == 7 {
                panic!("the source panics at 7");
            }
            out.emit(Scored {
                postid: format!("p{}", self.next),
                ppm: self.next as f32,
            })?;
            self.next += 1;
            Ok(Poll::Wait(Duration::from_secs(3600)))
        }
    }

    fn post(postid: &str, title: &str) -> serde_json::Value {
        json!({"postid": postid, "title": title})
    }

    #[test]
    fn outputs_come_back_as_json_in_order() {
        let outputs = run_stage::<Scorer>(
            json!({"ppm": 1.5}),
            vec![post("a", "x"), post("b", "twice")],
        )
        .unwrap();
        assert_eq!(
            outputs,
            vec![
                json!({"postid": "a", "ppm": 1.5}),
                json!({"postid": "b", "ppm": 1.5}),
                json!({"postid": "b", "ppm": 1.5}),
            ]
        );
    }

    #[test]
    fn inputs_written_with_another_schema_are_resolved() {
        // Written as {postid} only: the reader schema's default fills the title.
        let writer = r#"{"type":"record","name":"test_stage_one_topic_value","fields":[
            {"name":"postid","type":["string"]}]}"#;
        let outputs =
            run_stage_with_schema::<Scorer>(json!({}), writer, vec![json!({"postid": "a"})])
                .unwrap();
        assert_eq!(outputs, vec![json!({"postid": "a", "ppm": 0.0})]);
    }

    #[test]
    fn the_first_failing_input_ends_the_run_with_its_index_and_cause() {
        let err = run_stage::<Scorer>(
            json!({}),
            vec![post("a", "x"), post("b", "error"), post("c", "panic")],
        )
        .unwrap_err();
        assert_eq!(
            err,
            TestError::Record {
                index: 1,
                message: "transform failed: no score for this one".into()
            }
        );
    }

    #[test]
    fn a_panic_in_transform_is_a_failed_record_as_in_a_loaded_plugin() {
        let err =
            run_stage::<Scorer>(json!({}), vec![post("a", "x"), post("b", "panic")]).unwrap_err();
        let TestError::Record { index, message } = err else {
            panic!("not a record failure: {err:?}")
        };
        assert_eq!(index, 1);
        assert!(message.starts_with("transform panicked at "), "{message}");
        assert!(message.contains("transform panics on b"), "{message}");
    }

    #[test]
    fn an_output_that_does_not_match_the_schema_fails_its_record() {
        let err = run_stage::<Broken>(json!({}), vec![post("a", "x")]).unwrap_err();
        let message = err.to_string();
        assert!(
            message
                .starts_with("input 0: transform failed: output does not match the output schema"),
            "{message}"
        );
    }

    #[test]
    fn inputs_that_do_not_fit_the_writer_schema_name_their_index() {
        let err =
            run_stage::<Scorer>(json!({}), vec![post("a", "x"), json!({"postid": 3})]).unwrap_err();
        let TestError::Record { index, message } = err else {
            panic!("not a record failure: {err:?}")
        };
        assert_eq!(index, 1);
        assert!(message.starts_with("does not fit the schema"), "{message}");
    }

    #[test]
    fn constructor_errors_and_panics_are_constructor_failures() {
        let err = run_stage::<Scorer>(json!({"fail": true}), vec![]).unwrap_err();
        assert_eq!(err, TestError::Constructor("refused, as configured".into()));
        assert_eq!(
            err.to_string(),
            "stage constructor failed: refused, as configured"
        );

        let err = run_stage::<Scorer>(json!({"panic": true}), vec![]).unwrap_err();
        let TestError::Constructor(message) = err else {
            panic!("not a constructor failure: {err:?}")
        };
        assert!(
            message.contains("constructor panics, as configured"),
            "{message}"
        );

        let err = run_stage::<Scorer>(json!({"ppm": "high"}), vec![]).unwrap_err();
        assert!(err.to_string().contains("invalid stage config"), "{err}");
    }

    #[test]
    fn bad_schemas_are_setup_errors() {
        let err = run_stage_with_schema::<Scorer>(json!({}), "{not json", vec![]).unwrap_err();
        let TestError::Setup(message) = err else {
            panic!("not a setup failure: {err:?}")
        };
        assert!(message.starts_with("invalid Avro schema"), "{message}");
    }

    #[test]
    fn a_source_runs_to_its_end_without_waiting() {
        let started = std::time::Instant::now();
        let outputs = run_source::<Counter>(json!({"records": 3}), 10).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(outputs.len(), 3);
        assert_eq!(outputs[2], json!({"postid": "p2", "ppm": 2.0}));
        assert_eq!(
            run_source::<Counter>(json!({"records": 5}), 2)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_panicking_source_is_a_failed_poll() {
        let err = run_source::<Counter>(json!({"records": 9}), 9).unwrap_err();
        let TestError::Record { index, message } = err else {
            panic!("not a record failure: {err:?}")
        };
        assert_eq!(index, 7);
        assert!(message.contains("the source panics at 7"), "{message}");
    }
}
