//! The Rust client the host uses, `schema_registry_converter` (blocking), registers, encodes and
//! decodes through this registry exactly as through Confluent's.

use apache_avro::types::Value;
use schema_registry_converter::blocking::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::blocking::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

const STAGE_ONE: &str = include_str!("../../../schemas/stage_one.json");

fn string_in_union(s: &str) -> Value {
    Value::Union(0, Box::new(Value::String(s.into())))
}

#[test]
fn converter_registers_encodes_and_decodes() {
    // The converter's blocking client must not run inside an async context, so the server
    // gets its own runtime and the test thread stays synchronous.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(schema_registry::serve(listener, dir.path().to_path_buf()));

    let supplied = SuppliedSchema {
        name: Some("test_stage_one_topic_value".into()),
        schema_type: SchemaType::Avro,
        schema: STAGE_ONE.into(),
        references: vec![],
        properties: None,
        tags: None,
    };
    let record = vec![
        ("postid", string_in_union("p-1")),
        ("title", string_in_union("hello")),
    ];

    let encoder = AvroEncoder::new(SrSettings::new(url.clone()));
    let registering =
        SubjectNameStrategy::TopicNameStrategyWithSchema("converter".into(), false, supplied);
    let bytes = encoder.encode(record.clone(), &registering).unwrap();
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());

    // A second client that only knows the subject fetches the latest version.
    let latest = SubjectNameStrategy::TopicNameStrategy("converter".into(), false);
    let again = AvroEncoder::new(SrSettings::new(url.clone()))
        .encode(record, &latest)
        .unwrap();
    assert_eq!(again, bytes);

    let decoded = AvroDecoder::new(SrSettings::new(url))
        .decode(Some(&bytes))
        .unwrap();
    assert_eq!(
        decoded.value,
        Value::Record(vec![
            ("postid".into(), string_in_union("p-1")),
            ("title".into(), string_in_union("hello")),
        ])
    );
    assert_eq!(decoded.name.unwrap().name, "test_stage_one_topic_value");
    assert!(id >= 1);
}
