//! Avro decoding and encoding, compiled into the plugin.
//!
//! Schemas are parsed once: the output schema when the stage is constructed, each writer
//! schema the first time the host announces its registry id. Two libraries share the work,
//! each where it is the faster or the only one that can (the numbers are in ARCHITECTURE.md):
//!
//! - serde_avro_fast decodes a datum straight into the stage's serde input type when it was
//!   written with the stage's reader schema (or the stage declares none), and encodes serde
//!   outputs. It builds no intermediate `Value` and no per-datum name table.
//! - apache-avro decodes when the writer schema differs from the reader schema (it resolves
//!   one to the other; serde_avro_fast does not), for [`GenericRecord`] stages, which work on
//!   its `Value`, and for any schema serde_avro_fast does not accept.

use apache_avro::{types::Value, Schema};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Write};

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
    /// schema, or (decoded straight into a serde type) does not fit the stage's input type.
    #[error("cannot decode value (schema id {id}): {message}")]
    Decode {
        /// Writer schema id.
        id: u32,
        /// What the Avro library said.
        message: String,
    },
    /// The datum decoded to an Avro value that does not convert into the stage's input type.
    #[error("value (schema id {id}) does not fit the stage's input type: {message}")]
    InputType {
        /// Writer schema id.
        id: u32,
        /// What the conversion said.
        message: String,
    },
    /// An output value does not match the output schema.
    #[error("output does not match the output schema: {0}")]
    Encode(String),
}

use crate::one_line;

/// Parses an Avro schema from JSON.
#[cfg_attr(not(feature = "codec"), allow(unreachable_pub))]
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
    /// The same schema parsed by serde_avro_fast, for decoding straight into serde types.
    /// `None` when values must be resolved to the reader schema, or serde_avro_fast does not
    /// accept the schema: those decode through apache-avro.
    direct: Option<serde_avro_fast::Schema>,
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
        let direct = if resolve {
            None
        } else {
            json.parse::<serde_avro_fast::Schema>().ok()
        };
        self.writers.insert(
            id,
            WriterSchema {
                schema,
                resolve,
                direct,
            },
        );
        Ok(())
    }

    /// Decodes one datum written with schema `id` into the stage's input type: straight
    /// into a serde type when no resolution is needed, else through an Avro value.
    pub fn decode_into<T: FromAvro>(&self, id: u32, datum: &[u8]) -> Result<T, AvroError> {
        T::decode_avro(self, id, datum)
    }

    /// Decodes one datum written with schema `id` into a serde type.
    fn decode_serde<T: DeserializeOwned>(&self, id: u32, datum: &[u8]) -> Result<T, AvroError> {
        let writer = self.writer(id)?;
        match &writer.direct {
            Some(schema) => {
                decode_direct(schema, datum).map_err(|message| AvroError::Decode { id, message })
            }
            None => {
                let value = self.decode_value(id, writer, datum)?;
                apache_avro::from_value(&value).map_err(|e| AvroError::InputType {
                    id,
                    message: one_line(e),
                })
            }
        }
    }

    /// Decodes one datum written with schema `id` into an Avro value (resolved to the reader
    /// schema when it differs from the writer's).
    pub fn decode(&self, id: u32, datum: &[u8]) -> Result<Value, AvroError> {
        self.decode_value(id, self.writer(id)?, datum)
    }

    fn writer(&self, id: u32) -> Result<&WriterSchema, AvroError> {
        self.writers.get(&id).ok_or(AvroError::UnknownSchemaId(id))
    }

    fn decode_value(
        &self,
        id: u32,
        writer: &WriterSchema,
        datum: &[u8],
    ) -> Result<Value, AvroError> {
        let decode_error = |message: String| AvroError::Decode { id, message };
        let mut input = datum;
        let value = apache_avro::from_avro_datum(&writer.schema, &mut input, None)
            .map_err(|e| decode_error(one_line(e)))?;
        // apache-avro decodes a union index or a boolean cut off by the end of the datum as
        // null instead of failing. Looking for exactly that is cheap; `Value::validate` (the
        // fallback for schemas with named references) rebuilds the schema's name table on
        // every call, which cost more than the decoding itself.
        let truncated = match cut_off(&value, &writer.schema) {
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

/// Decodes `datum` straight into `T` with serde_avro_fast, which reports a datum cut off
/// anywhere as an error; bytes left over after the value are one too.
fn decode_direct<T: DeserializeOwned>(
    schema: &serde_avro_fast::Schema,
    datum: &[u8],
) -> Result<T, String> {
    let mut state = serde_avro_fast::de::DeserializerState::from_slice(datum, schema);
    let value = T::deserialize(state.deserializer()).map_err(|e| fast_error_text(&e))?;
    let left_over = state.into_reader().fill_buf().map_or(0, |rest| rest.len());
    if left_over > 0 {
        return Err(format!("{left_over} bytes left over after the datum"));
    }
    Ok(value)
}

/// serde_avro_fast's message, with the I/O error under it that its `Display` leaves out
/// ("failed to fill whole buffer" for a datum cut off inside a fixed-size value).
fn fast_error_text(error: &serde_avro_fast::de::DeError) -> String {
    match error.io_error() {
        Some(io) => one_line(format!("{error}: {io}")),
        None => one_line(error),
    }
}

/// Encodes output values with the stage's output schema.
pub struct Encoder {
    schema: Schema,
    /// The same schema parsed by serde_avro_fast, which serializes serde values; `None` when
    /// it does not accept the schema, and apache-avro serializes them.
    fast: Option<serde_avro_fast::Schema>,
    /// Whether apache-avro can serialize serde values straight to bytes. Its direct
    /// serializer cannot follow references to named types, so schemas that reuse a named type
    /// go through an intermediate `Value` instead.
    apache_direct: bool,
}

impl Encoder {
    /// An encoder for `schema_json`.
    pub fn new(schema_json: &str) -> Result<Self, AvroError> {
        let schema = parse_schema(schema_json)?;
        let fast = schema_json.parse::<serde_avro_fast::Schema>().ok();
        let apache_direct = !has_named_references(&schema);
        Ok(Encoder {
            schema,
            fast,
            apache_direct,
        })
    }

    /// Serializes a serde value as one Avro datum appended to `out`. On error, part of the
    /// datum may have been written: the caller discards it.
    pub fn encode_serde<T: Serialize, W: Write>(
        &self,
        value: &T,
        out: &mut W,
    ) -> Result<(), AvroError> {
        if let Some(schema) = &self.fast {
            // A config holds reusable buffers, but they are only used for fields serialized
            // out of schema order and for arrays and maps; creating one allocates nothing.
            let mut config = serde_avro_fast::ser::SerializerConfig::new(schema);
            serde_avro_fast::to_datum(value, out, &mut config)
                .map(drop)
                .map_err(|e| AvroError::Encode(one_line(e)))
        } else if self.apache_direct {
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

/// Whether `value`, decoded with `schema`, holds a null where the schema has none: what
/// apache-avro returns when the datum ends where a union branch index or a boolean should be.
/// `None` when the schema refers to a named type, which this walk does not follow.
fn cut_off(value: &Value, schema: &Schema) -> Option<bool> {
    match (value, schema) {
        (_, Schema::Ref { .. }) => None,
        (Value::Null, schema) => Some(!matches!(schema, Schema::Null)),
        (Value::Union(index, inner), Schema::Union(union)) => {
            cut_off(inner, union.variants().get(*index as usize)?)
        }
        (Value::Record(fields), Schema::Record(record)) => {
            for ((_, field), field_schema) in fields.iter().zip(&record.fields) {
                if cut_off(field, &field_schema.schema)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        (Value::Array(items), Schema::Array(array)) => {
            for item in items {
                if cut_off(item, &array.items)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        (Value::Map(entries), Schema::Map(map)) => {
            for entry in entries.values() {
                if cut_off(entry, &map.types)? {
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

    /// Decodes one datum written with schema `id` (what `Decoder::decode_into` calls). By
    /// default: decode to an Avro value, then [`from_avro`](Self::from_avro). Serde types
    /// decode straight into the type when the writer schema needs no resolution.
    fn decode_avro(decoder: &Decoder, id: u32, datum: &[u8]) -> Result<Self, AvroError> {
        let value = decoder.decode(id, datum)?;
        Self::from_avro(value).map_err(|message| AvroError::InputType { id, message })
    }
}

impl<T: DeserializeOwned> FromAvro for T {
    fn from_avro(value: Value) -> Result<Self, String> {
        apache_avro::from_value(&value).map_err(one_line)
    }

    fn decode_avro(decoder: &Decoder, id: u32, datum: &[u8]) -> Result<Self, AvroError> {
        decoder.decode_serde(id, datum)
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
    const NULLABLE: &str = include_str!("../../schemas/test_topic.json");

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

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Scored {
        postid: String,
        ppm: f32,
    }

    fn post() -> Post {
        Post {
            postid: "postid_1".into(),
            title: "abc".into(),
        }
    }

    fn encoded<T: Serialize>(schema: &str, value: &T) -> Vec<u8> {
        let mut bytes = Vec::new();
        Encoder::new(schema)
            .unwrap()
            .encode_serde(value, &mut bytes)
            .unwrap();
        bytes
    }

    /// A decoder for `writer` under id 1, reading as `reader`.
    fn decoder(reader: Option<&str>, writer: &str) -> Decoder {
        let mut decoder = Decoder::new(reader).unwrap();
        decoder.add_writer_schema(1, writer).unwrap();
        decoder
    }

    #[test]
    fn serde_types_decode_straight_unless_the_schemas_differ() {
        let same = decoder(Some(STAGE_ONE), STAGE_ONE);
        assert!(same.writers[&1].direct.is_some());
        let undeclared = decoder(None, STAGE_ONE);
        assert!(undeclared.writers[&1].direct.is_some());
        let evolved = decoder(Some(STAGE_ONE), STAGE_TWO);
        assert!(evolved.writers[&1].direct.is_none());
    }

    #[test]
    fn direct_decoding_agrees_with_apache_avro() {
        let bytes = encoded(STAGE_ONE, &post());
        let decoder = decoder(None, STAGE_ONE);
        let direct: Post = decoder.decode_into(1, &bytes).unwrap();
        let through_value = Post::from_avro(decoder.decode(1, &bytes).unwrap()).unwrap();
        assert_eq!(direct, post());
        assert_eq!(through_value, post());

        let scored = Scored {
            postid: "p".into(),
            ppm: 0.1,
        };
        let bytes = encoded(STAGE_TWO, &scored);
        let decoder = self::decoder(Some(STAGE_TWO), STAGE_TWO);
        let direct: Scored = decoder.decode_into(1, &bytes).unwrap();
        assert_eq!(direct, scored);
        assert_eq!(
            Scored::from_avro(decoder.decode(1, &bytes).unwrap()).unwrap(),
            scored
        );
    }

    #[test]
    fn both_encoders_write_the_same_bytes() {
        let scored = Scored {
            postid: "postid_9".into(),
            ppm: 123.25,
        };
        let ours = encoded(STAGE_TWO, &scored);
        let schema = parse_schema(STAGE_TWO).unwrap();
        let mut apache = Vec::new();
        apache_avro::write_avro_datum_ref(&schema, &scored, &mut apache).unwrap();
        assert_eq!(ours, apache);
    }

    #[test]
    fn nullable_fields_decode_into_options() {
        #[derive(Debug, Serialize, Deserialize, PartialEq)]
        struct Keys {
            k1: Option<String>,
            k2: Option<String>,
        }
        let keys = Keys {
            k1: None,
            k2: Some("v".into()),
        };
        let bytes = encoded(NULLABLE, &keys);
        assert_eq!(bytes[0], 0, "k1 is the null branch");
        let back: Keys = decoder(None, NULLABLE).decode_into(1, &bytes).unwrap();
        assert_eq!(back, keys);
    }

    #[test]
    fn input_types_may_leave_out_fields() {
        // stage two reads only `postid` from a stage-one record; `title` is skipped
        #[derive(Debug, Deserialize, PartialEq)]
        struct PostId {
            postid: String,
        }
        let bytes = encoded(STAGE_ONE, &post());
        let back: PostId = decoder(None, STAGE_ONE).decode_into(1, &bytes).unwrap();
        assert_eq!(back.postid, "postid_1");
    }

    #[test]
    fn resolution_into_serde_types_fills_defaults() {
        let bytes = encoded(
            STAGE_TWO,
            &Scored {
                postid: "p".into(),
                ppm: 1.5,
            },
        );
        let post: Post = decoder(Some(STAGE_ONE), STAGE_TWO)
            .decode_into(1, &bytes)
            .unwrap();
        assert_eq!(post.title, "default_title");
    }

    /// Every way a datum can be bad, for a decoder that reads serde types directly and one that
    /// resolves them through apache-avro.
    fn assert_bad_datums_are_decode_errors(decoder: &Decoder, valid: &[u8]) {
        for len in 0..valid.len() {
            let cut = decoder.decode_into::<Post>(1, &valid[..len]);
            assert!(
                matches!(cut, Err(AvroError::Decode { id: 1, .. })),
                "cut to {len} bytes: {cut:?}"
            );
        }
        let mut longer = valid.to_vec();
        longer.push(0);
        let left_over = decoder.decode_into::<Post>(1, &longer).unwrap_err();
        assert!(
            left_over.to_string().contains("1 bytes left over"),
            "{left_over}"
        );
        let bad_branch = decoder.decode_into::<Post>(1, &[0x0a]);
        assert!(
            matches!(bad_branch, Err(AvroError::Decode { id: 1, .. })),
            "{bad_branch:?}"
        );
        let unknown = decoder.decode_into::<Post>(2, valid);
        assert!(
            matches!(unknown, Err(AvroError::UnknownSchemaId(2))),
            "{unknown:?}"
        );
    }

    #[test]
    fn truncated_or_padded_datums_are_decode_errors_on_both_paths() {
        let valid = encoded(STAGE_ONE, &post());
        assert_bad_datums_are_decode_errors(&decoder(None, STAGE_ONE), &valid);
        // Written as stage one with an extra field, read as stage one: resolved.
        let wider = STAGE_ONE.replacen(
            r#""fields": ["#,
            r#""fields": [{"name": "extra", "type": ["null", "long"], "default": null},"#,
            1,
        );
        let mut valid_wider = vec![0x00]; // extra: null branch
        valid_wider.extend(&valid);
        let resolving = decoder(Some(STAGE_ONE), &wider);
        assert!(resolving.writers[&1].direct.is_none());
        assert_eq!(
            resolving.decode_into::<Post>(1, &valid_wider).unwrap(),
            post()
        );
        assert_bad_datums_are_decode_errors(&resolving, &valid_wider);
    }

    #[test]
    fn truncated_floats_and_booleans_are_decode_errors() {
        let bytes = encoded(
            STAGE_TWO,
            &Scored {
                postid: "p".into(),
                ppm: 2.5,
            },
        );
        let decoder = decoder(None, STAGE_TWO);
        let cut = decoder.decode_into::<Scored>(1, &bytes[..bytes.len() - 1]);
        assert!(matches!(cut, Err(AvroError::Decode { .. })), "{cut:?}");
        assert!(decoder.decode(1, &bytes[..bytes.len() - 1]).is_err());

        // apache-avro reads a boolean cut off by the end of the datum as null
        const FLAG: &str =
            r#"{"type":"record","name":"flag","fields":[{"name":"on","type":"boolean"}]}"#;
        let decoder = self::decoder(None, FLAG);
        let value = decoder.decode(1, &[]);
        assert!(matches!(value, Err(AvroError::Decode { .. })), "{value:?}");
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Flag {
            on: bool,
        }
        let direct = decoder.decode_into::<Flag>(1, &[]);
        assert!(
            matches!(direct, Err(AvroError::Decode { .. })),
            "{direct:?}"
        );
    }

    #[test]
    fn decode_errors_name_the_schema_id_on_one_line() {
        let decoder = decoder(None, STAGE_ONE);
        for error in [
            decoder
                .decode_into::<Post>(1, &[0x00, 0x40, b'a'])
                .unwrap_err(),
            decoder.decode_into::<Scored>(1, &[0x00]).unwrap_err(),
            decoder.decode(1, &[0x00, 0x40, b'a']).unwrap_err(),
        ] {
            let text = error.to_string();
            assert!(text.contains("schema id 1"), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_decode_errors() {
        // stage one's `title` is a string: it does not decode as a number
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct NumericTitle {
            postid: String,
            title: f64,
        }
        let bytes = encoded(STAGE_ONE, &post());
        let direct = decoder(None, STAGE_ONE).decode_into::<NumericTitle>(1, &bytes);
        assert!(
            matches!(direct, Err(AvroError::Decode { id: 1, .. })),
            "{direct:?}"
        );
        let mut wider = decoder(Some(STAGE_ONE), STAGE_TWO);
        wider.add_writer_schema(2, STAGE_ONE).unwrap();
        let resolved = wider.decode_into::<NumericTitle>(2, &bytes);
        assert!(resolved.is_err(), "{resolved:?}");
    }

    #[test]
    fn outputs_missing_a_field_are_encode_errors() {
        #[derive(Serialize)]
        struct OnlyPostId {
            postid: String,
        }
        let err = OnlyPostId { postid: "p".into() }
            .write_avro(&Encoder::new(STAGE_TWO).unwrap(), &mut Vec::new())
            .unwrap_err();
        assert!(matches!(err, AvroError::Encode(_)), "{err}");
        assert!(err.to_string().contains("ppm"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn untagged_enum_outputs_encode_their_variant() {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Output {
            Scored { postid: String, ppm: f32 },
            Wrong { postid: String, ppm: String },
        }
        let encoder = Encoder::new(STAGE_TWO).unwrap();
        let mut bytes = Vec::new();
        Output::Scored {
            postid: "p".into(),
            ppm: 1.0,
        }
        .write_avro(&encoder, &mut bytes)
        .unwrap();
        let back: Scored = decoder(None, STAGE_TWO).decode_into(1, &bytes).unwrap();
        assert_eq!(back.ppm, 1.0);
        let err = Output::Wrong {
            postid: "p".into(),
            ppm: "lots".into(),
        }
        .write_avro(&encoder, &mut Vec::new())
        .unwrap_err();
        assert!(matches!(err, AvroError::Encode(_)), "{err}");
    }

    #[test]
    fn generic_records_decode_through_values() {
        let bytes = encoded(STAGE_ONE, &post());
        let decoder = decoder(None, STAGE_ONE);
        let record: GenericRecord = decoder.decode_into(1, &bytes).unwrap();
        assert_eq!(record.field("title"), Some(&Value::String("abc".into())));
        let cut = decoder.decode_into::<GenericRecord>(1, &bytes[..3]);
        assert!(matches!(cut, Err(AvroError::Decode { .. })), "{cut:?}");
    }

    #[test]
    fn random_bytes_are_errors_or_values_never_panics() {
        // A fixed xorshift sequence: random datums of 0..48 bytes, and valid datums with one
        // byte changed, through both decoding paths.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let direct = decoder(None, STAGE_TWO);
        let resolving = decoder(Some(STAGE_ONE), STAGE_TWO);
        let valid = encoded(
            STAGE_TWO,
            &Scored {
                postid: "postid_1".into(),
                ppm: 3.5,
            },
        );
        for round in 0..20_000 {
            let datum: Vec<u8> = if round % 2 == 0 {
                (0..next() % 48).map(|_| next() as u8).collect()
            } else {
                let mut changed = valid.clone();
                let at = next() as usize % changed.len();
                changed[at] = next() as u8;
                changed
            };
            let _ = direct.decode_into::<Scored>(1, &datum);
            let _ = direct.decode_into::<GenericRecord>(1, &datum);
            let _ = resolving.decode_into::<Post>(1, &datum);
        }
    }
}
