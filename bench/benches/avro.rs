//! Avro decoding and encoding per record with the plugin-side codec, for the example
//! schemas: the work a stage does for every record besides its transform.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use plugin_api::avro::{Decoder, Encoder};
use plugin_api::FromAvro;
use serde::{Deserialize, Serialize};
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

/// What the plugin adapter does per input record: decode the datum, convert to the stage's type.
fn decode<T: FromAvro>(decoder: &Decoder, id: u32, datum: &[u8]) -> Result<T, String> {
    let value = decoder.decode(id, datum).map_err(|e| e.to_string())?;
    T::from_avro(value)
}

fn post() -> Post {
    Post {
        postid: "postid_123456".into(),
        title: "0123456789abcdef0123456789abcdef".into(),
    }
}

fn avro(c: &mut Criterion) {
    let mut group = c.benchmark_group("avro");
    group.throughput(Throughput::Elements(1));

    let encoder = Encoder::new(STAGE_ONE).expect("schema");
    let mut datum = Vec::new();
    encoder.encode_serde(&post(), &mut datum).expect("encodes");
    let mut decoder = Decoder::new(Some(STAGE_ONE)).expect("schema");
    decoder.add_writer_schema(1, STAGE_ONE).expect("schema");
    group.bench_function("decode/stage_one", |b| {
        b.iter(|| decode::<Post>(&decoder, 1, black_box(&datum)).expect("decodes"))
    });

    let value = post();
    let mut out = Vec::with_capacity(128);
    group.bench_function("encode/stage_one", |b| {
        b.iter(|| {
            out.clear();
            encoder
                .encode_serde(black_box(&value), &mut out)
                .expect("encodes")
        })
    });

    let encoder = Encoder::new(STAGE_TWO).expect("schema");
    let scored = Scored {
        postid: "postid_123456".into(),
        ppm: 100.0,
    };
    let mut datum = Vec::new();
    encoder.encode_serde(&scored, &mut datum).expect("encodes");
    let mut decoder = Decoder::new(Some(STAGE_TWO)).expect("schema");
    decoder.add_writer_schema(2, STAGE_TWO).expect("schema");
    group.bench_function("decode/stage_two", |b| {
        b.iter(|| decode::<Scored>(&decoder, 2, black_box(&datum)).expect("decodes"))
    });
    group.bench_function("encode/stage_two", |b| {
        b.iter(|| {
            out.clear();
            encoder
                .encode_serde(black_box(&scored), &mut out)
                .expect("encodes")
        })
    });
    group.finish();
}

criterion_group!(benches, avro);
criterion_main!(benches);
