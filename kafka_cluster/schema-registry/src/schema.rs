//! Parsing submitted Avro schema text and deciding when two submissions are the same schema.
//!
//! Identity is not the Avro Parsing Canonical Form: that form drops `default`, `aliases` and
//! `doc`, and a change of default is a real schema change (it decides compatibility), which
//! Confluent registers as a new version. Instead two texts are the same schema when apache-avro
//! parses them to the same schema and serialises that back to the same JSON. This ignores
//! whitespace, key order and `"string"` versus `{"type": "string"}`, like Confluent's
//! comparison of `Schema.toString()` output.
//!
//! Parsing follows the Python client's expectations: the project's schemas use single-branch
//! unions with a default (`"type": ["string"], "default": "default_title"`) and unions whose
//! default matches a later branch (`["null", "string"]` with a string default). Confluent
//! accepts both, and apache-avro 0.21 accepts both too because it checks a union default
//! against every branch; the tests in this module keep that true.

use std::sync::Arc;

use apache_avro::Schema;

use crate::error::RegistryError;

/// The only schema type this registry stores.
pub const AVRO: &str = "AVRO";

/// A schema that parsed, with the key used to find an identical earlier registration.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    /// The parsed form, used for compatibility checks.
    pub schema: Arc<Schema>,
    /// Normalised JSON of the parsed schema; equal keys mean the same schema.
    pub identity: String,
}

/// Checks the requested schema type: Avro (the default when absent) is the only one supported.
pub fn check_schema_type(schema_type: Option<&str>) -> Result<(), RegistryError> {
    match schema_type {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case(AVRO) => Ok(()),
        Some(other) => Err(RegistryError::InvalidSchema(format!(
            "schemaType {other} is not supported by this registry; only AVRO schemas can be registered"
        ))),
    }
}

/// Parses Avro schema text, mapping any failure to Confluent's invalid-schema error (42201).
pub fn parse(text: &str) -> Result<ParsedSchema, RegistryError> {
    if text.trim().is_empty() {
        return Err(RegistryError::InvalidSchema("the schema is empty".into()));
    }
    let schema = Schema::parse_str(text)
        .map_err(|e| RegistryError::InvalidSchema(format!("{e} (schema: {text})")))?;
    let identity = serde_json::to_string(&schema)
        .map_err(|e| RegistryError::InvalidSchema(format!("cannot normalise schema: {e}")))?;
    Ok(ParsedSchema {
        schema: Arc::new(schema),
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT_SCHEMAS: [&str; 4] = [
        include_str!("../../../schemas/stage_one.json"),
        include_str!("../../../schemas/stage_two.json"),
        include_str!("../../../schemas/stage_three.json"),
        include_str!("../../../schemas/test_topic.json"),
    ];

    #[test]
    fn project_schemas_parse() {
        for text in PROJECT_SCHEMAS {
            parse(text).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn formatting_does_not_change_identity() {
        let a = parse(r#"{"type":"record","name":"r","fields":[{"name":"a","type":"string"}]}"#)
            .unwrap();
        let b = parse(
            r#"{ "fields": [ {"type": {"type": "string"}, "name": "a"} ],
                 "name": "r", "type": "record" }"#,
        )
        .unwrap();
        assert_eq!(a.identity, b.identity);
    }

    #[test]
    fn default_change_changes_identity() {
        let a = parse(
            r#"{"type":"record","name":"r","fields":[{"name":"a","type":"string","default":"x"}]}"#,
        )
        .unwrap();
        let b = parse(
            r#"{"type":"record","name":"r","fields":[{"name":"a","type":"string","default":"y"}]}"#,
        )
        .unwrap();
        assert_ne!(a.identity, b.identity);
    }

    #[test]
    fn invalid_schema_is_42201() {
        let err = parse(r#"{"type":"record","name":"r"}"#).unwrap_err();
        assert_eq!(err.error_code(), 42201);
        assert_eq!(parse("   ").unwrap_err().error_code(), 42201);
    }

    #[test]
    fn only_avro_type() {
        assert!(check_schema_type(None).is_ok());
        assert!(check_schema_type(Some("AVRO")).is_ok());
        assert_eq!(
            check_schema_type(Some("PROTOBUF"))
                .unwrap_err()
                .error_code(),
            42201
        );
    }
}
