//! Avro decoding and encoding, compiled into the plugin.
//!
//! Schemas are parsed once: the output schema when the stage is constructed, each writer
//! schema the first time the host announces its registry id. Per record, decoding is one
//! `decode` (plus a resolution step only when the writer and reader schemas differ) and one
//! serde conversion; encoding serializes the serde value straight into the host's buffer.

use apache_avro::{types::Value, Schema};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::io::Write;

/// An Avro problem, as one line of text for logs and dead-letter headers.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// A schema did not parse.
    #[error("invalid Avro schema: {0}")]
    Schema(String),
    /// A record carries a schema id the host never announced.
    #[error("unknown writer schema id {0}")]
    UnknownSchemaId(u32),
    /// The datum does not decode with its writer schema, or does not resolve to the reader
    /// schema, or does not convert into the stage's input type.
    #[error("cannot decode value (schema id {id}): {message}")]
    Decode {
        /// Writer schema id.
        id: u32,
        /// What apache-avro said.
        message: String,
    },
    /// An output value does not match the output schema.
    #[error("output does not match the output schema: {0}")]
    Encode(String),
}

use crate::one_line;

/// Parses an Avro schema from JSON.
pub fn parse_schema(json: &str) -> Result<Schema, AvroError> {
    Schema::parse_str(json).map_err(|e| AvroError::Schema(one_line(e)))
}

/// Decodes input datums into Avro values, resolving them to the reader schema when the stage
/// declared one that differs from the writer's.
pub struct Decoder {
    reader: Option<Schema>,
    writers: HashMap<u32, WriterSchema>,
}

struct WriterSchema {
    schema: Schema,
    /// False when the writer schema equals the reader schema (or there is none), which
    /// skips apache-avro's per-call resolution, the costly part of decoding.
    resolve: bool,
}

impl Decoder {
    /// A decoder reading values as `reader_schema`, or as written when `None`.
    pub fn new(reader_schema: Option<&str>) -> Result<Self, AvroError> {
        Ok(Decoder {
            reader: reader_schema.map(parse_schema).transpose()?,
            writers: HashMap::new(),
        })
    }

    /// Makes the writer schema with registry id `id` known.
    pub fn add_writer_schema(&mut self, id: u32, json: &str) -> Result<(), AvroError> {
        let schema = parse_schema(json)?;
        let resolve = match &self.reader {
            Some(reader) => reader.canonical_form() != schema.canonical_form(),
            None => false,
        };
        self.writers.insert(id, WriterSchema { schema, resolve });
        Ok(())
    }

    /// Decodes one datum written with schema `id`.
    pub fn decode(&self, id: u32, datum: &[u8]) -> Result<Value, AvroError> {
        let writer = self
            .writers
            .get(&id)
            .ok_or(AvroError::UnknownSchemaId(id))?;
        let decode_error = |message: String| AvroError::Decode { id, message };
        let mut input = datum;
        let value = apache_avro::from_avro_datum(&writer.schema, &mut input, None)
            .map_err(|e| decode_error(one_line(e)))?;
        // apache-avro decodes a union whose index is cut off by the end of the datum as null
        // instead of failing. Looking for exactly that is cheap; `Value::validate` (the
        // fallback for schemas with named references) rebuilds the schema's name table on
        // every call, which cost more than the decoding itself.
        let truncated = match eof_union(&value, &writer.schema) {
            Some(found) => found,
            None => !value.validate(&writer.schema),
        };
        if truncated {
            return Err(decode_error(
                "datum is truncated or does not match its writer schema".into(),
            ));
        }
        if !input.is_empty() {
            return Err(decode_error(format!(
                "{} bytes left over after the datum",
                input.len()
            )));
        }
        match (&self.reader, writer.resolve) {
            (Some(reader), true) => value.resolve(reader).map_err(|e| decode_error(one_line(e))),
            _ => Ok(value),
        }
    }
}

/// Encodes output values with the stage's output schema.
pub struct Encoder {
    schema: Schema,
    /// Whether serde values can be serialized straight to bytes. apache-avro's direct
    /// serializer cannot follow references to named types, so schemas that reuse a named type
    /// go through an intermediate `Value` instead.
    direct: bool,
}

impl Encoder {
    /// An encoder for `schema_json`.
    pub fn new(schema_json: &str) -> Result<Self, AvroError> {
        let schema = parse_schema(schema_json)?;
        let direct = !has_named_references(&schema);
        Ok(Encoder { schema, direct })
    }

    /// Serializes a serde value as one Avro datum appended to `out`.
    pub fn encode_serde<T: Serialize, W: Write>(
        &self,
        value: &T,
        out: &mut W,
    ) -> Result<(), AvroError> {
        if self.direct {
            apache_avro::write_avro_datum_ref(&self.schema, value, out)
                .map(drop)
                .map_err(|e| AvroError::Encode(one_line(e)))
        } else {
            let value = apache_avro::to_value(value).map_err(|e| AvroError::Encode(one_line(e)))?;
            self.encode_value(value, out)
        }
    }

    /// Encodes an Avro value as one datum appended to `out`, resolving it to the schema first
    /// (so a plain string fits a `["string"]` union).
    pub fn encode_value<W: Write>(&self, value: Value, out: &mut W) -> Result<(), AvroError> {
        let value = value
            .resolve(&self.schema)
            .map_err(|e| AvroError::Encode(one_line(e)))?;
        let bytes = apache_avro::to_avro_datum(&self.schema, value)
            .map_err(|e| AvroError::Encode(one_line(e)))?;
        out.write_all(&bytes)
            .map_err(|e| AvroError::Encode(one_line(e)))
    }
}

/// Whether `value`, decoded with `schema`, holds a null in a union branch that is not null:
/// what apache-avro returns when the datum ends where the branch index should be. `None` when
/// the schema refers to a named type, which this walk does not follow.
fn eof_union(value: &Value, schema: &Schema) -> Option<bool> {
    match (value, schema) {
        (_, Schema::Ref { .. }) => None,
        (Value::Union(index, inner), Schema::Union(union)) => {
            let variant = union.variants().get(*index as usize)?;
            if matches!(**inner, Value::Null) && !matches!(variant, Schema::Null) {
                return Some(true);
            }
            eof_union(inner, variant)
        }
        (Value::Record(fields), Schema::Record(record)) => {
            for ((_, field), field_schema) in fields.iter().zip(&record.fields) {
                if eof_union(field, &field_schema.schema)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        (Value::Array(items), Schema::Array(array)) => {
            for item in items {
                if eof_union(item, &array.items)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        (Value::Map(entries), Schema::Map(map)) => {
            for entry in entries.values() {
                if eof_union(entry, &map.types)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        _ => Some(false),
    }
}

fn has_named_references(schema: &Schema) -> bool {
    match schema {
        Schema::Ref { .. } => true,
        Schema::Record(r) => r.fields.iter().any(|f| has_named_references(&f.schema)),
        Schema::Array(a) => has_named_references(&a.items),
        Schema::Map(m) => has_named_references(&m.types),
        Schema::Union(u) => u.variants().iter().any(has_named_references),
        _ => false,
    }
}

/// An Avro record handled as a dynamic value, for stages that do not want a serde type.
#[derive(Debug, Clone, PartialEq)]
pub struct GenericRecord(pub Value);

impl GenericRecord {
    /// The value of field `name`, looking through single-branch unions.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match &self.0 {
            Value::Record(fields) => fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| match v {
                    Value::Union(_, inner) => inner.as_ref(),
                    other => other,
                }),
            _ => None,
        }
    }
}

/// A type a stage can take as input: any `DeserializeOwned` serde type, or [`GenericRecord`].
pub trait FromAvro: Sized {
    /// Converts a decoded Avro value.
    fn from_avro(value: Value) -> Result<Self, String>;
}

impl<T: DeserializeOwned> FromAvro for T {
    fn from_avro(value: Value) -> Result<Self, String> {
        apache_avro::from_value(&value).map_err(one_line)
    }
}

impl FromAvro for GenericRecord {
    fn from_avro(value: Value) -> Result<Self, String> {
        Ok(GenericRecord(value))
    }
}

/// A type a stage can emit: any `Serialize` serde type, or [`GenericRecord`].
pub trait ToAvro {
    /// Appends the datum for `self` to `out`.
    fn write_avro<W: Write>(&self, encoder: &Encoder, out: &mut W) -> Result<(), AvroError>;
}

impl<T: Serialize> ToAvro for T {
    fn write_avro<W: Write>(&self, encoder: &Encoder, out: &mut W) -> Result<(), AvroError> {
        encoder.encode_serde(self, out)
    }
}

impl ToAvro for GenericRecord {
    fn write_avro<W: Write>(&self, encoder: &Encoder, out: &mut W) -> Result<(), AvroError> {
        encoder.encode_value(self.0.clone(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const STAGE_ONE: &str = include_str!("../../schemas/stage_one.json");
    const STAGE_TWO: &str = include_str!("../../schemas/stage_two.json");

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Post {
        postid: String,
        title: String,
    }

    #[test]
    fn single_branch_unions_round_trip_through_serde_types() {
        let encoder = Encoder::new(STAGE_ONE).unwrap();
        let post = Post {
            postid: "postid_1".into(),
            title: "abc".into(),
        };
        let mut bytes = Vec::new();
        post.write_avro(&encoder, &mut bytes).unwrap();
        // union index 0, then the string: zig-zag varint length and bytes
        assert_eq!(bytes[0], 0);

        let mut decoder = Decoder::new(None).unwrap();
        decoder.add_writer_schema(7, STAGE_ONE).unwrap();
        let back = Post::from_avro(decoder.decode(7, &bytes).unwrap()).unwrap();
        assert_eq!(back, post);
    }

    #[test]
    fn reader_schema_resolution_fills_defaults() {
        // Written as stage two ({postid, ppm}); read as stage one ({postid, title="default_title"}).
        let encoder = Encoder::new(STAGE_TWO).unwrap();
        let mut bytes = Vec::new();
        #[derive(Serialize)]
        struct Ppm {
            postid: String,
            ppm: f32,
        }
        Ppm {
            postid: "p".into(),
            ppm: 1.5,
        }
        .write_avro(&encoder, &mut bytes)
        .unwrap();
        let mut decoder = Decoder::new(Some(STAGE_ONE)).unwrap();
        decoder.add_writer_schema(1, STAGE_TWO).unwrap();
        let post = Post::from_avro(decoder.decode(1, &bytes).unwrap()).unwrap();
        assert_eq!(post.title, "default_title");
    }

    #[test]
    fn garbage_and_unknown_ids_are_decode_errors() {
        let mut decoder = Decoder::new(None).unwrap();
        decoder.add_writer_schema(1, STAGE_ONE).unwrap();
        assert!(matches!(
            decoder.decode(2, &[0]),
            Err(AvroError::UnknownSchemaId(2))
        ));
        // union branch 5 of a one-branch union
        let bad_branch = decoder.decode(1, &[0x0a]);
        assert!(
            matches!(bad_branch, Err(AvroError::Decode { .. })),
            "{bad_branch:?}"
        );
        // the datum ends where the second field's union index should be
        let cut_at_union = decoder.decode(1, &[0x00, 0x02, b'p']);
        assert!(
            matches!(cut_at_union, Err(AvroError::Decode { .. })),
            "{cut_at_union:?}"
        );
        // a string length running past the end of the datum
        let truncated = decoder.decode(1, &[0x00, 0x40, b'a']);
        assert!(
            matches!(truncated, Err(AvroError::Decode { .. })),
            "{truncated:?}"
        );
    }

    #[test]
    fn values_that_do_not_fit_the_schema_are_encode_errors() {
        let encoder = Encoder::new(STAGE_TWO).unwrap();
        #[derive(Serialize)]
        struct Wrong {
            postid: i64,
        }
        let err = Wrong { postid: 3 }
            .write_avro(&encoder, &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, AvroError::Encode(_)), "{err}");
    }

    #[test]
    fn generic_records_encode_and_expose_fields() {
        let encoder = Encoder::new(STAGE_TWO).unwrap();
        let record = GenericRecord(Value::Record(vec![
            ("postid".into(), Value::String("p".into())),
            ("ppm".into(), Value::Float(2.0)),
        ]));
        let mut bytes = Vec::new();
        record.write_avro(&encoder, &mut bytes).unwrap();
        let mut decoder = Decoder::new(None).unwrap();
        decoder.add_writer_schema(3, STAGE_TWO).unwrap();
        let back = GenericRecord::from_avro(decoder.decode(3, &bytes).unwrap()).unwrap();
        assert_eq!(back.field("ppm"), Some(&Value::Float(2.0)));
    }
}
