//! A `PipelineStage` subclass behind the plugin ABI's `StageObject`.
//!
//! One crossing per batch: `process` takes the GIL once and, for every record, decodes the
//! datum straight into a dict (the writer's schema), calls `transform(msg)`, and encodes what
//! it returns against the output schema. A record fails alone: an undecodable datum is a
//! decode failure, an exception in `transform` a transform failure carrying the exception's
//! type and message, and a returned value that does not fit the schema an encode failure
//! naming the field. The host's error policy decides what happens next.

use crate::avro::CompiledSchema;
use crate::guarded;
use crate::interpreter::describe;
use crate::output;
use crate::script::Declared;
use plugin_abi::std_types::{RResult, RStr, RString};
use plugin_abi::{FailureKind, InputBatch, InputRecord, OutputBuffer, StageObject};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::collections::HashMap;

/// The message `transform(msg)` receives, with the accessors of confluent-kafka's `Message`
/// the library handed it. `value()` is the decoded dict; `key()` the key as text (the
/// library decoded keys as UTF-8), bytes when it is not UTF-8, or `None`.
#[pyclass(module = "kafka_client", name = "Message", frozen)]
pub struct Message {
    key: PyObject,
    value: PyObject,
    topic: Py<PyString>,
    partition: i32,
    offset: i64,
    timestamp_ms: i64,
}

#[pymethods]
impl Message {
    /// The record's key.
    fn key(&self, py: Python<'_>) -> PyObject {
        self.key.clone_ref(py)
    }

    /// The record's value, decoded with the schema it was written with.
    fn value(&self, py: Python<'_>) -> PyObject {
        self.value.clone_ref(py)
    }

    /// The stage's input topic.
    fn topic(&self, py: Python<'_>) -> Py<PyString> {
        self.topic.clone_ref(py)
    }

    /// The record's partition.
    fn partition(&self) -> i32 {
        self.partition
    }

    /// The record's offset.
    fn offset(&self) -> i64 {
        self.offset
    }

    /// `(type, milliseconds)` as confluent-kafka gives it: `(1, ms)` for a create time,
    /// `(0, -1)` when the record has none.
    fn timestamp(&self) -> (i32, i64) {
        if self.timestamp_ms < 0 {
            (0, -1)
        } else {
            (1, self.timestamp_ms)
        }
    }

    /// Headers do not cross the plugin boundary: always `None`, as confluent-kafka returns
    /// for a record without headers.
    fn headers(&self) -> Option<PyObject> {
        None
    }

    /// A consumed record carries no error.
    fn error(&self) -> Option<PyObject> {
        None
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Message(topic={}, partition={}, offset={}, key={}, value={})",
            self.topic.bind(py),
            self.partition,
            self.offset,
            self.key
                .bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            self.value
                .bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_default(),
        )
    }
}

/// A constructed Python stage.
pub(crate) struct PythonStage {
    transform: PyObject,
    input_topic: Py<PyString>,
    output: CompiledSchema,
    writers: HashMap<u32, CompiledSchema>,
    scratch: Vec<u8>,
}

impl PythonStage {
    /// Binds the instance's `transform` and compiles the output schema.
    pub(crate) fn new(declared: Declared) -> Result<PythonStage, String> {
        Python::with_gil(|py| {
            let instance = declared.instance.bind(py);
            let transform = instance
                .getattr("transform")
                .map_err(|e| describe(py, &e))?
                .unbind();
            let output = CompiledSchema::parse(py, &declared.spec.output_value_schema)
                .map_err(|e| format!("{}'s output schema: {e}", declared.spec.name))?;
            let topic = declared.spec.input_topic.clone().unwrap_or_default();
            Ok(PythonStage {
                transform,
                input_topic: PyString::new(py, &topic).unbind(),
                output,
                writers: HashMap::new(),
                scratch: Vec::new(),
            })
        })
    }

    /// Runs one record; on failure says why (the caller rewinds its outputs).
    fn process_record(
        &mut self,
        py: Python<'_>,
        index: u32,
        meta: &InputRecord,
        bytes: &[u8],
        out: &mut OutputBuffer,
    ) -> Result<(), (FailureKind, String)> {
        let writer = self.writers.get(&meta.value_schema_id).ok_or_else(|| {
            (
                FailureKind::Decode,
                format!("no writer schema with id {}", meta.value_schema_id),
            )
        })?;
        let value = writer.decode(py, meta.value.of(bytes)).map_err(|e| {
            (
                FailureKind::Decode,
                format!("schema id {}: {e}", meta.value_schema_id),
            )
        })?;
        let key = match meta.has_key {
            false => py.None(),
            true => {
                let key = meta.key.of(bytes);
                match std::str::from_utf8(key) {
                    Ok(text) => PyString::new(py, text).into_any().unbind(),
                    Err(_) => PyBytes::new(py, key).into_any().unbind(),
                }
            }
        };
        let message = Message {
            key,
            value: value.unbind(),
            topic: self.input_topic.clone_ref(py),
            partition: meta.partition,
            offset: meta.offset,
            timestamp_ms: meta.timestamp_ms,
        };
        let message =
            Bound::new(py, message).map_err(|e| (FailureKind::Transform, describe(py, &e)))?;
        let args =
            PyTuple::new(py, [message]).map_err(|e| (FailureKind::Transform, describe(py, &e)))?;
        let returned = self
            .transform
            .bind(py)
            .call1(args)
            .map_err(|e| (FailureKind::Transform, describe(py, &e)))?;
        let encode = |value: &Bound<'_, PyAny>, out: &mut OutputBuffer, scratch: &mut Vec<u8>| {
            output::emit(out, scratch, &self.output, index, None, value)
                .map_err(|e| (FailureKind::Encode, e.to_string()))
        };
        if returned.is_none() {
            return Ok(());
        }
        if let Ok(list) = returned.downcast::<PyList>() {
            for (n, item) in list.iter().enumerate() {
                encode(&item, out, &mut self.scratch)
                    .map_err(|(kind, e)| (kind, format!("output {n}: {e}")))?;
            }
            return Ok(());
        }
        encode(&returned, out, &mut self.scratch)
    }
}

impl StageObject for PythonStage {
    fn add_writer_schema(&mut self, id: u32, schema_json: RStr<'_>) -> RResult<(), RString> {
        guarded(|| {
            let schema = Python::with_gil(|py| CompiledSchema::parse(py, schema_json.as_str()))
                .map_err(|e| format!("writer schema {id}: {e}"))?;
            self.writers.insert(id, schema);
            Ok(())
        })
    }

    fn process(&mut self, batch: InputBatch<'_>, out: &mut OutputBuffer) -> RResult<(), RString> {
        guarded(|| {
            let bytes = batch.bytes.as_slice();
            Python::with_gil(|py| {
                for (index, meta) in batch.records.iter().enumerate() {
                    let index = index as u32;
                    let mark = output::mark(out);
                    if let Err((kind, message)) = self.process_record(py, index, meta, bytes, out) {
                        output::rewind(out, mark);
                        output::fail(out, index, kind, message);
                    }
                }
            });
            Ok(())
        })
    }
}
