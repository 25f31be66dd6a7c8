//! Avro decoding and encoding per record for the example schemas: the work a stage does for
//! every record besides its transform.
//!
//! Each schema is measured several ways in one run, so the numbers compare:
//! - `decode/<schema>/adapter`: what the plugin adapter does per input record
//!   (`Decoder::decode_into`, into the stage's serde type);
//! - `decode/<schema>/apache_avro_adapter`: the adapter's apache-avro path (decode to a
//!   `Value` with the truncation checks, then `from_value`), which stages with a reader
//!   schema that differs from the writer's and `GenericRecord` stages take;
//! - `decode/<schema>/apache_avro`: apache-avro alone, `from_avro_datum` then `from_value`;
//! - `decode/<schema>/apache_avro_no_name_table`: the same through
//!   `from_avro_datum_schemata` with no extra schemata, which builds an empty name table
//!   instead of one for the whole writer schema (only valid without named references);
//! - `decode/<schema>/serde_avro_fast`: serde_avro_fast alone, straight into the serde type;
//! - `encode/<schema>/encoder`: the plugin's `Encoder::encode_serde`;
//! - `encode/<schema>/apache_avro`: apache-avro's schema-aware serializer
//!   (`write_avro_datum_ref`);
//! - `encode/<schema>/serde_avro_fast`: serde_avro_fast with its serializer config reused.
//!
//! Run: `cargo bench -p stage-bench --bench avro`.

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use plugin_api::apache_avro;
use plugin_api::codec::{Decoder, Encoder};
use plugin_api::FromAvro;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::hint::black_box;

const STAGE_ONE: &str = include_str!("../../schemas/stage_one.json");
const STAGE_TWO: &str = include_str!("../../schemas/stage_two.json");

#[derive(Serialize, Deserialize)]
struct Post {
    postid: String,
    title: String,
}

#[derive(Serialize, Deserialize)]
struct Scored {
    postid: String,
    ppm: f32,
}

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Measures every decode and encode path for values of type `T` written with `schema_json`.
fn codec_paths<T: Serialize + DeserializeOwned>(
    group: &mut Group<'_>,
    name: &str,
    schema_json: &str,
    value: &T,
) {
    const ID: u32 = 1;
    let encoder = Encoder::new(schema_json).expect("schema");
    let mut datum = Vec::new();
    encoder.encode_serde(value, &mut datum).expect("encodes");
    // The stage declares its input schema, equal to the writer's: no resolution step.
    let mut decoder = Decoder::new(Some(schema_json)).expect("schema");
    decoder.add_writer_schema(ID, schema_json).expect("schema");
    let schema = apache_avro::Schema::parse_str(schema_json).expect("schema");
    let fast_schema: serde_avro_fast::Schema = schema_json.parse().expect("schema");

    group.bench_function(format!("decode/{name}/adapter"), |b| {
        b.iter(|| {
            decoder
                .decode_into::<T>(ID, black_box(&datum))
                .expect("decodes")
        })
    });
    group.bench_function(format!("decode/{name}/apache_avro_adapter"), |b| {
        b.iter(|| {
            let value = decoder.decode(ID, black_box(&datum)).expect("decodes");
            T::from_avro(value).expect("converts")
        })
    });
    group.bench_function(format!("decode/{name}/apache_avro"), |b| {
        b.iter(|| {
            let mut input = black_box(datum.as_slice());
            let value = apache_avro::from_avro_datum(&schema, &mut input, None).expect("decodes");
            apache_avro::from_value::<T>(&value).expect("converts")
        })
    });
    group.bench_function(format!("decode/{name}/apache_avro_no_name_table"), |b| {
        b.iter(|| {
            let mut input = black_box(datum.as_slice());
            let value = apache_avro::from_avro_datum_schemata(&schema, vec![], &mut input, None)
                .expect("decodes");
            apache_avro::from_value::<T>(&value).expect("converts")
        })
    });
    group.bench_function(format!("decode/{name}/serde_avro_fast"), |b| {
        b.iter(|| {
            serde_avro_fast::from_datum_slice::<T>(black_box(&datum), &fast_schema)
                .expect("decodes")
        })
    });

    let mut out = Vec::with_capacity(128);
    group.bench_function(format!("encode/{name}/encoder"), |b| {
        b.iter(|| {
            out.clear();
            encoder
                .encode_serde(black_box(value), &mut out)
                .expect("encodes")
        })
    });
    group.bench_function(format!("encode/{name}/apache_avro"), |b| {
        b.iter(|| {
            out.clear();
            apache_avro::write_avro_datum_ref(&schema, black_box(value), &mut out).expect("encodes")
        })
    });
    let mut config = serde_avro_fast::ser::SerializerConfig::new(&fast_schema);
    group.bench_function(format!("encode/{name}/serde_avro_fast"), |b| {
        b.iter(|| {
            out.clear();
            serde_avro_fast::to_datum(black_box(value), &mut out, &mut config).expect("encodes");
        })
    });
}

fn avro(c: &mut Criterion) {
    let mut group = c.benchmark_group("avro");
    group.throughput(Throughput::Elements(1));
    let post = Post {
        postid: "postid_123456".into(),
        title: "0123456789abcdef0123456789abcdef".into(),
    };
    codec_paths(&mut group, "stage_one", STAGE_ONE, &post);
    let scored = Scored {
        postid: "postid_123456".into(),
        ppm: 100.0,
    };
    codec_paths(&mut group, "stage_two", STAGE_TWO, &scored);
    group.finish();
}

criterion_group!(benches, avro);
criterion_main!(benches);
