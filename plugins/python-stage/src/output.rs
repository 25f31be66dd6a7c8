//! Appending outputs and failures to the host's reusable [`OutputBuffer`].

use crate::avro::{CompiledSchema, EncodeError};
use plugin_abi::{FailureKind, OutputBuffer, OutputKey, OutputRecord, RecordFailure, Span};
use pyo3::prelude::*;

/// Where the buffer stood before a record's outputs, to take them back if the record fails.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    bytes: usize,
    records: usize,
}

pub(crate) fn mark(out: &OutputBuffer) -> Mark {
    Mark {
        bytes: out.bytes.len(),
        records: out.records.len(),
    }
}

/// Drops everything appended since `mark`.
pub(crate) fn rewind(out: &mut OutputBuffer, mark: Mark) {
    out.bytes.truncate(mark.bytes);
    out.records.truncate(mark.records);
}

fn span(start: usize, end: usize) -> Span {
    Span {
        start: start as u32,
        len: (end - start) as u32,
    }
}

/// Encodes `value` with `schema` into the buffer as one output of input `input_index`.
/// `scratch` is a reused buffer (the host's `RVec` is grown through its own allocator, so the
/// datum is encoded into a plain `Vec` first).
pub(crate) fn emit(
    out: &mut OutputBuffer,
    scratch: &mut Vec<u8>,
    schema: &CompiledSchema,
    input_index: u32,
    key: Option<Option<&[u8]>>,
    value: &Bound<'_, PyAny>,
) -> Result<(), EncodeError> {
    scratch.clear();
    schema.encode(value, scratch)?;
    push_encoded(out, input_index, key, scratch);
    Ok(())
}

/// Appends an already encoded datum. `key`: `None` keeps the input's key, `Some(None)` is a
/// null key, `Some(Some(bytes))` these bytes.
pub(crate) fn push_encoded(
    out: &mut OutputBuffer,
    input_index: u32,
    key: Option<Option<&[u8]>>,
    datum: &[u8],
) {
    let (key_kind, key_span) = match key {
        None => (OutputKey::SameAsInput, Span::default()),
        Some(None) => (OutputKey::Null, Span::default()),
        Some(Some(bytes)) => {
            let start = out.bytes.len();
            out.bytes.extend_from_slice(bytes);
            (OutputKey::Given, span(start, out.bytes.len()))
        }
    };
    let start = out.bytes.len();
    out.bytes.extend_from_slice(datum);
    let value = span(start, out.bytes.len());
    out.records.push(OutputRecord {
        input_index,
        key_kind,
        key: key_span,
        value,
    });
}

/// Records that input `input_index` failed.
pub(crate) fn fail(out: &mut OutputBuffer, input_index: u32, kind: FailureKind, message: String) {
    out.failures.push(RecordFailure {
        input_index,
        kind,
        message: message.into(),
    });
}
