//! Avro schemas and JSON records for the commands that handle them by hand: `harness` encodes
//! JSON records with a writer schema and decodes the plugin's outputs back to JSON, and the
//! `schema` commands check a schema file before sending it.
//!
//! The host uses apache-avro directly here (the version schema_registry_converter brings in),
//! not the codec compiled into plugins: the host never links the plugin side.

use crate::error::one_line;
use apache_avro::{types::Value, Schema};

/// Parses an Avro schema from JSON.
pub fn parse_schema(json: &str) -> Result<Schema, String> {
    Schema::parse_str(json).map_err(|e| format!("invalid Avro schema: {}", one_line(e)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STAGE_ONE: &str = include_str!("../../schemas/stage_one.json");

    #[test]
    fn json_round_trips_through_a_schema_with_unions() {
        let schema = parse_schema(STAGE_ONE).unwrap();
        let post = json!({"postid": "p1", "title": "abc"});
        let datum = encode_json(&schema, &post).unwrap();
        assert_eq!(decode_json(&schema, &datum).unwrap(), post);
    }

    #[test]
    fn bad_schemas_and_misfits_are_one_line_errors() {
        let err = parse_schema("{\"type\":\n \"nope\"}").unwrap_err();
        assert!(err.starts_with("invalid Avro schema: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let schema = parse_schema(STAGE_ONE).unwrap();
        let err = encode_json(&schema, &json!({"postid": 3})).unwrap_err();
        assert!(err.starts_with("does not fit the schema"), "{err}");
    }
}
