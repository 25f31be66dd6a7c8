//! Avro datums to Python objects and back, with no intermediate value or JSON text.
//!
//! A schema is parsed once by apache-avro and compiled into a [`CompiledSchema`]: an arena of
//! nodes with named references resolved and record field names interned as Python strings,
//! so decoding a record is one `PyDict` with interned keys and encoding one is a dict lookup
//! per field. Decoding reads a datum as its writer wrote it (the writer schema by id), as the
//! library's deserializer did. Encoding walks the output schema and reports the first value
//! that does not fit with the path of its field (`field `ppm`: expected a float, got str`).
//!
//! Logical types are read and written as their underlying Avro types (a timestamp is an
//! int, a decimal its bytes, a uuid a string).

use apache_avro::Schema;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};
use serde_json::Value as Json;
use std::collections::HashMap;

/// One node of a compiled schema.
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record(Vec<Field>),
    Enum(Vec<Py<PyString>>),
    Fixed(usize),
    /// A named type whose definition is still being compiled (recursive records).
    Pending,
}

struct Field {
    name: String,
    key: Py<PyString>,
    node: usize,
    default: Option<Json>,
}

/// A schema ready to decode datums into Python objects and encode Python objects into datums.
pub struct CompiledSchema {
    nodes: Vec<Node>,
    root: usize,
}

/// Why a Python value does not fit the schema: the path of the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    path: Vec<String>,
    message: String,
}

impl EncodeError {
    fn new(message: impl Into<String>) -> Self {
        EncodeError {
            path: Vec::new(),
            message: message.into(),
        }
    }

    fn within(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            return write!(f, "the output value: {}", self.message);
        }
        let path: Vec<&str> = self.path.iter().rev().map(String::as_str).collect();
        write!(f, "field `{}`: {}", path.join("."), self.message)
    }
}

impl CompiledSchema {
    /// Parses `schema_json` and compiles it.
    pub fn parse(py: Python<'_>, schema_json: &str) -> Result<CompiledSchema, String> {
        let schema = Schema::parse_str(schema_json).map_err(|e| e.to_string())?;
        let mut compiled = CompiledSchema {
            nodes: Vec::new(),
            root: 0,
        };
        let mut names = HashMap::new();
        compiled.root = compiled.compile(py, &schema, &mut names)?;
        Ok(compiled)
    }

    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn compile(
        &mut self,
        py: Python<'_>,
        schema: &Schema,
        names: &mut HashMap<String, usize>,
    ) -> Result<usize, String> {
        let node = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Node::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes | Schema::BigDecimal => Node::Bytes,
            Schema::String | Schema::Uuid => Node::String,
            Schema::Decimal(decimal) => return self.compile(py, &decimal.inner, names),
            Schema::Duration => Node::Fixed(12),
            Schema::Array(array) => Node::Array(self.compile(py, &array.items, names)?),
            Schema::Map(map) => Node::Map(self.compile(py, &map.types, names)?),
            Schema::Union(union) => Node::Union(
                union
                    .variants()
                    .iter()
                    .map(|variant| self.compile(py, variant, names))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Record(record) => {
                // Registered before its fields, so a field may refer to the record itself.
                let index = self.push(Node::Pending);
                names.insert(record.name.fullname(None), index);
                let mut fields = Vec::with_capacity(record.fields.len());
                for field in &record.fields {
                    fields.push(Field {
                        name: field.name.clone(),
                        key: PyString::intern(py, &field.name).unbind(),
                        node: self.compile(py, &field.schema, names)?,
                        default: field.default.clone(),
                    });
                }
                self.nodes[index] = Node::Record(fields);
                return Ok(index);
            }
            Schema::Enum(enumeration) => {
                let index = self.push(Node::Enum(
                    enumeration
                        .symbols
                        .iter()
                        .map(|s| PyString::intern(py, s).unbind())
                        .collect(),
                ));
                names.insert(enumeration.name.fullname(None), index);
                return Ok(index);
            }
            Schema::Fixed(fixed) => {
                let index = self.push(Node::Fixed(fixed.size));
                names.insert(fixed.name.fullname(None), index);
                return Ok(index);
            }
            Schema::Ref { name } => {
                return names
                    .get(&name.fullname(None))
                    .copied()
                    .ok_or_else(|| format!("the schema refers to an unknown type {name}"))
            }
        };
        Ok(self.push(node))
    }

    /// Decodes one datum (Confluent framing already stripped) into a Python object.
    pub fn decode<'py>(&self, py: Python<'py>, datum: &[u8]) -> Result<Bound<'py, PyAny>, String> {
        let mut reader = Reader {
            bytes: datum,
            at: 0,
        };
        let value = self.decode_node(py, self.root, &mut reader)?;
        if reader.at != datum.len() {
            return Err(format!(
                "{} bytes left over after the datum",
                datum.len() - reader.at
            ));
        }
        Ok(value)
    }

    fn decode_node<'py>(
        &self,
        py: Python<'py>,
        node: usize,
        r: &mut Reader<'_>,
    ) -> Result<Bound<'py, PyAny>, String> {
        Ok(match &self.nodes[node] {
            Node::Null => py.None().into_bound(py),
            Node::Boolean => match r.byte()? {
                0 => PyBool::new(py, false).to_owned().into_any(),
                1 => PyBool::new(py, true).to_owned().into_any(),
                other => return Err(format!("a boolean byte of {other}")),
            },
            Node::Int => {
                let v = r.long()?;
                let v = i32::try_from(v).map_err(|_| format!("an int out of range: {v}"))?;
                v.into_pyobject(py).map_err(|e| e.to_string())?.into_any()
            }
            Node::Long => r
                .long()?
                .into_pyobject(py)
                .map_err(|e| e.to_string())?
                .into_any(),
            Node::Float => PyFloat::new(py, f64::from(f32::from_le_bytes(r.array()?))).into_any(),
            Node::Double => PyFloat::new(py, f64::from_le_bytes(r.array()?)).into_any(),
            Node::Bytes => {
                let len = r.length()?;
                PyBytes::new(py, r.take(len)?).into_any()
            }
            Node::String => {
                let len = r.length()?;
                let text = std::str::from_utf8(r.take(len)?)
                    .map_err(|e| format!("a string that is not UTF-8: {e}"))?;
                PyString::new(py, text).into_any()
            }
            Node::Fixed(size) => PyBytes::new(py, r.take(*size)?).into_any(),
            Node::Enum(symbols) => {
                let index = r.long()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| format!("enum index {index} of {} symbols", symbols.len()))?;
                symbol.bind(py).clone().into_any()
            }
            Node::Union(branches) => {
                let index = r.long()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| {
                        format!("union branch {index} of {} branches", branches.len())
                    })?;
                self.decode_node(py, *branch, r)?
            }
            Node::Record(fields) => {
                let dict = PyDict::new(py);
                for field in fields {
                    let value = self
                        .decode_node(py, field.node, r)
                        .map_err(|e| format!("field `{}`: {e}", field.name))?;
                    dict.set_item(field.key.bind(py), value)
                        .map_err(|e| e.to_string())?;
                }
                dict.into_any()
            }
            Node::Array(items) => {
                let list = PyList::empty(py);
                r.blocks(|r| {
                    list.append(self.decode_node(py, *items, r)?)
                        .map_err(|e| e.to_string())
                })?;
                list.into_any()
            }
            Node::Map(values) => {
                let dict = PyDict::new(py);
                r.blocks(|r| {
                    let len = r.length()?;
                    let key = std::str::from_utf8(r.take(len)?)
                        .map_err(|e| format!("a map key that is not UTF-8: {e}"))?
                        .to_owned();
                    let value = self.decode_node(py, *values, r)?;
                    dict.set_item(key, value).map_err(|e| e.to_string())
                })?;
                dict.into_any()
            }
            Node::Pending => return Err("a type used before its definition".into()),
        })
    }

    /// Appends the datum of `value` to `out`. On error `out` may hold part of it; the caller
    /// truncates.
    pub fn encode(&self, value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_node(self.root, value, out)
    }

    fn encode_node(
        &self,
        node: usize,
        value: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        match &self.nodes[node] {
            Node::Null if value.is_none() => Ok(()),
            Node::Null => Err(mistyped("None", value)),
            Node::Boolean => match value.downcast::<PyBool>() {
                Ok(b) => {
                    out.push(u8::from(b.is_true()));
                    Ok(())
                }
                Err(_) => Err(mistyped("a bool", value)),
            },
            Node::Int => {
                let v = integer(value).ok_or_else(|| mistyped("an int", value))?;
                let v = i32::try_from(v)
                    .map_err(|_| EncodeError::new(format!("{v} does not fit an Avro int")))?;
                write_long(out, i64::from(v));
                Ok(())
            }
            Node::Long => {
                let v = integer(value).ok_or_else(|| mistyped("an int", value))?;
                write_long(out, v);
                Ok(())
            }
            Node::Float => {
                let v = number(value).ok_or_else(|| mistyped("a float", value))?;
                out.extend_from_slice(&(v as f32).to_le_bytes());
                Ok(())
            }
            Node::Double => {
                let v = number(value).ok_or_else(|| mistyped("a float", value))?;
                out.extend_from_slice(&v.to_le_bytes());
                Ok(())
            }
            Node::String => {
                let s = value
                    .downcast::<PyString>()
                    .map_err(|_| mistyped("a str", value))?;
                let text = s.to_str().map_err(|e| EncodeError::new(e.to_string()))?;
                write_bytes(out, text.as_bytes());
                Ok(())
            }
            Node::Bytes => {
                let bytes = byte_string(value).ok_or_else(|| mistyped("bytes", value))?;
                write_bytes(out, &bytes);
                Ok(())
            }
            Node::Fixed(size) => {
                let bytes = byte_string(value).ok_or_else(|| mistyped("bytes", value))?;
                if bytes.len() != *size {
                    return Err(EncodeError::new(format!(
                        "{} bytes for a fixed of {size}",
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
                Ok(())
            }
            Node::Enum(symbols) => {
                let s = value
                    .downcast::<PyString>()
                    .map_err(|_| mistyped("a str (an enum symbol)", value))?;
                let text = s.to_str().map_err(|e| EncodeError::new(e.to_string()))?;
                let index = symbols
                    .iter()
                    .position(|symbol| symbol.bind(value.py()).to_str().ok() == Some(text))
                    .ok_or_else(|| {
                        EncodeError::new(format!("`{text}` is not a symbol of the enum"))
                    })?;
                write_long(out, index as i64);
                Ok(())
            }
            Node::Union(branches) => self.encode_union(branches, value, out),
            Node::Record(fields) => {
                let dict = value
                    .downcast::<PyDict>()
                    .map_err(|_| mistyped("a dict", value))?;
                for field in fields {
                    match dict
                        .get_item(field.key.bind(value.py()))
                        .map_err(|e| EncodeError::new(e.to_string()))?
                    {
                        Some(item) => self.encode_node(field.node, &item, out),
                        None => match &field.default {
                            Some(default) => self.encode_json(field.node, default, out),
                            None => Err(EncodeError::new(
                                "missing (and the schema gives no default)",
                            )),
                        },
                    }
                    .map_err(|e| e.within(field.name.clone()))?;
                }
                Ok(())
            }
            Node::Array(items) => {
                let list = value
                    .try_iter()
                    .ok()
                    .filter(|_| {
                        !value.is_instance_of::<PyString>() && !value.is_instance_of::<PyDict>()
                    })
                    .ok_or_else(|| mistyped("a list", value))?;
                let items_of: Vec<Bound<'_, PyAny>> = list
                    .collect::<PyResult<_>>()
                    .map_err(|e| EncodeError::new(e.to_string()))?;
                if !items_of.is_empty() {
                    write_long(out, items_of.len() as i64);
                    for (n, item) in items_of.iter().enumerate() {
                        self.encode_node(*items, item, out)
                            .map_err(|e| e.within(format!("[{n}]")))?;
                    }
                }
                out.push(0);
                Ok(())
            }
            Node::Map(values) => {
                let dict = value
                    .downcast::<PyDict>()
                    .map_err(|_| mistyped("a dict", value))?;
                if !dict.is_empty() {
                    write_long(out, dict.len() as i64);
                    for (key, item) in dict.iter() {
                        let key = key
                            .downcast::<PyString>()
                            .map_err(|_| mistyped("str keys", &key))?
                            .to_str()
                            .map_err(|e| EncodeError::new(e.to_string()))?
                            .to_owned();
                        write_bytes(out, key.as_bytes());
                        self.encode_node(*values, &item, out)
                            .map_err(|e| e.within(key))?;
                    }
                }
                out.push(0);
                Ok(())
            }
            Node::Pending => Err(EncodeError::new("a type used before its definition")),
        }
    }

    /// The first branch that takes the value, as fastavro picks one: `None` goes to `null`.
    fn encode_union(
        &self,
        branches: &[usize],
        value: &Bound<'_, PyAny>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let mark = out.len();
        let mut first_error = None;
        for (index, &branch) in branches.iter().enumerate() {
            write_long(out, index as i64);
            match self.encode_node(branch, value, out) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    out.truncate(mark);
                    first_error.get_or_insert(e);
                }
            }
        }
        match (branches.len(), first_error) {
            (1, Some(e)) => Err(e),
            _ => Err(mistyped("a value of one of the union's types", value)),
        }
    }

    /// Encodes a field's default (JSON, as the schema gives it). A union's default is of its
    /// first branch.
    fn encode_json(&self, node: usize, value: &Json, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let bad = || {
            EncodeError::new(format!(
                "the schema's default {value} does not fit its type"
            ))
        };
        match (&self.nodes[node], value) {
            (Node::Null, Json::Null) => {}
            (Node::Boolean, Json::Bool(b)) => out.push(u8::from(*b)),
            (Node::Int | Node::Long, Json::Number(n)) => {
                write_long(out, n.as_i64().ok_or_else(bad)?)
            }
            (Node::Float, Json::Number(n)) => {
                out.extend_from_slice(&(n.as_f64().ok_or_else(bad)? as f32).to_le_bytes())
            }
            (Node::Double, Json::Number(n)) => {
                out.extend_from_slice(&n.as_f64().ok_or_else(bad)?.to_le_bytes())
            }
            (Node::String, Json::String(s)) => write_bytes(out, s.as_bytes()),
            (Node::Bytes, Json::String(s)) => {
                // Avro gives bytes defaults as strings of code points 0-255.
                let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
                write_bytes(out, &bytes);
            }
            (Node::Enum(symbols), Json::String(s)) => {
                let py_index = Python::with_gil(|py| {
                    symbols
                        .iter()
                        .position(|symbol| symbol.bind(py).to_str().ok() == Some(s.as_str()))
                });
                write_long(out, py_index.ok_or_else(bad)? as i64);
            }
            (Node::Union(branches), _) => {
                let first = *branches.first().ok_or_else(bad)?;
                write_long(out, 0);
                self.encode_json(first, value, out)?;
            }
            (Node::Array(items), Json::Array(values)) => {
                if !values.is_empty() {
                    write_long(out, values.len() as i64);
                    for v in values {
                        self.encode_json(*items, v, out)?;
                    }
                }
                out.push(0);
            }
            (Node::Map(items), Json::Object(values)) => {
                if !values.is_empty() {
                    write_long(out, values.len() as i64);
                    for (k, v) in values {
                        write_bytes(out, k.as_bytes());
                        self.encode_json(*items, v, out)?;
                    }
                }
                out.push(0);
            }
            (Node::Record(fields), Json::Object(values)) => {
                for field in fields {
                    match values.get(&field.name).or(field.default.as_ref()) {
                        Some(v) => self.encode_json(field.node, v, out)?,
                        None => return Err(bad()),
                    }
                }
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}

fn mistyped(expected: &str, value: &Bound<'_, PyAny>) -> EncodeError {
    let got = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an unknown type".into());
    EncodeError::new(format!("expected {expected}, got {got}"))
}

/// An int that is not a bool (a bool is an int in Python, but not in the schema's sense).
fn integer(value: &Bound<'_, PyAny>) -> Option<i64> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return None;
    }
    value.extract::<i64>().ok()
}

/// A float, or an int written where a float is expected (`"ppm": 100`).
fn number(value: &Bound<'_, PyAny>) -> Option<f64> {
    if value.is_instance_of::<PyBool>() {
        return None;
    }
    if let Ok(f) = value.downcast::<PyFloat>() {
        return Some(f.value());
    }
    integer(value).map(|i| i as f64)
}

fn byte_string(value: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = value.downcast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    value.downcast::<PyByteArray>().ok().map(|b| b.to_vec())
}

fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// Reads a datum front to back; every read checks the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("the datum ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((n >> 1) as i64) ^ -((n & 1) as i64));
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn length(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("a negative length {n}"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("the datum ends early")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    /// Array and map blocks: a count, then that many items, until a count of 0; a negative
    /// count is followed by the block's size in bytes.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count.checked_neg().ok_or("a block count out of range")?;
                self.long()?;
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCORED: &str = r#"{"type": "record", "name": "test_stage_two_topic_value", "fields": [
        {"name": "postid", "type": ["string"]},
        {"name": "ppm", "type": ["float"], "default": 0.99}]}"#;

    fn with_python<T>(f: impl FnOnce(Python<'_>) -> T) -> T {
        pyo3::prepare_freethreaded_python();
        Python::with_gil(f)
    }

    #[test]
    fn a_record_round_trips_through_python() {
        with_python(|py| {
            let schema = CompiledSchema::parse(py, SCORED).unwrap();
            let value = PyDict::new(py);
            value.set_item("postid", "postid_7").unwrap();
            value.set_item("ppm", 100).unwrap();
            let mut datum = Vec::new();
            schema.encode(value.as_any(), &mut datum).unwrap();
            // Union index 0, "postid_7", union index 0, 100.0f32.
            let mut expected = vec![0, 16];
            expected.extend_from_slice(b"postid_7");
            expected.push(0);
            expected.extend_from_slice(&100f32.to_le_bytes());
            assert_eq!(datum, expected);
            let back = schema.decode(py, &datum).unwrap();
            assert_eq!(back.to_string(), "{'postid': 'postid_7', 'ppm': 100.0}");
        });
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_field() {
        with_python(|py| {
            let schema = CompiledSchema::parse(py, SCORED).unwrap();
            let mut out = Vec::new();
            let missing = PyDict::new(py);
            missing.set_item("ppm", 1.5).unwrap();
            let err = schema.encode(missing.as_any(), &mut out).unwrap_err();
            assert_eq!(
                err.to_string(),
                "field `postid`: missing (and the schema gives no default)"
            );
            let mistyped = PyDict::new(py);
            mistyped.set_item("postid", "p").unwrap();
            mistyped.set_item("ppm", "high").unwrap();
            out.clear();
            let err = schema.encode(mistyped.as_any(), &mut out).unwrap_err();
            assert_eq!(err.to_string(), "field `ppm`: expected a float, got str");
            let err = schema
                .encode(&PyList::empty(py).into_any(), &mut out)
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "the output value: expected a dict, got list"
            );
            // A missing field with a default takes it.
            let defaulted = PyDict::new(py);
            defaulted.set_item("postid", "p").unwrap();
            out.clear();
            schema.encode(defaulted.as_any(), &mut out).unwrap();
            let back = schema.decode(py, &out).unwrap();
            let ppm: f64 = back.get_item("ppm").unwrap().extract().unwrap();
            assert!((ppm - 0.99).abs() < 1e-6, "{ppm}");
        });
    }

    #[test]
    fn nested_types_round_trip_and_bad_datums_are_errors() {
        let schema_json = r#"{"type": "record", "name": "r", "fields": [
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "kind", "type": {"type": "enum", "name": "k", "symbols": ["A", "B"]}},
            {"name": "next", "type": ["null", "r"]},
            {"name": "ok", "type": "boolean"},
            {"name": "raw", "type": "bytes"},
            {"name": "d", "type": "double"}]}"#;
        with_python(|py| {
            let schema = CompiledSchema::parse(py, schema_json).unwrap();
            let value = py
                .eval(
                    c"{'tags': ['x', 'y'], 'counts': {'a': -3}, 'kind': 'B', 'ok': True, 'raw': b'\\x00\\xff', 'd': 2.5, 'next': {'tags': [], 'counts': {}, 'kind': 'A', 'next': None, 'ok': False, 'raw': b'', 'd': -1.0}}",
                    None,
                    None,
                )
                .unwrap();
            let mut datum = Vec::new();
            schema.encode(&value, &mut datum).unwrap();
            let back = schema.decode(py, &datum).unwrap();
            assert!(back.eq(&value).unwrap(), "{back}");
            for cut in 0..datum.len() {
                assert!(schema.decode(py, &datum[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = datum.clone();
            longer.push(0);
            assert!(schema
                .decode(py, &longer)
                .unwrap_err()
                .contains("left over"));

            let bad_enum = py
                .eval(c"{'tags': [], 'counts': {}, 'kind': 'C', 'next': None, 'ok': True, 'raw': b'', 'd': 0.0}", None, None)
                .unwrap();
            let err = schema.encode(&bad_enum, &mut Vec::new()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "field `kind`: `C` is not a symbol of the enum"
            );
            let bad_nested = py
                .eval(c"{'tags': [1], 'counts': {}, 'kind': 'A', 'next': None, 'ok': True, 'raw': b'', 'd': 0.0}", None, None)
                .unwrap();
            let err = schema.encode(&bad_nested, &mut Vec::new()).unwrap_err();
            assert_eq!(err.to_string(), "field `tags.[0]`: expected a str, got int");
        });
    }
}
