//! The plugin-side Avro codec, for programs that are not plugins (feature `codec`): the typed
//! client (`stage-client`) and the benchmarks encode and decode with the same code a plugin
//! compiles in, so what they write and read is what a stage writes and reads.
//!
//! A [`Decoder`] holds writer schemas by registry id and an optional reader schema they are
//! resolved to; an [`Encoder`] holds one output schema. Schemas are parsed once.

pub use crate::avro::{parse_schema, AvroError, Decoder, Encoder};
