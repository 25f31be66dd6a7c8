//! The plugin boundary per batch size: `process` on batches of 1, 10, 100 and 1000 stage-one
//! records, through the loaded `target/release/libstage_two.so` and through the same stage
//! linked into this binary. The difference between the two is what the boundary costs; both
//! include decoding, the transform and encoding.
//!
//! Build the plugin first: `cargo build --release -p stage-two`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use plugin_api::codec::Encoder;
use plugin_host::OutputBuffer;
use plugin_host::{InputBatchBuilder, Plugin, RecordPosition, StageInstance};
use serde::Serialize;
use std::path::Path;

const STAGE_ONE: &str = include_str!("../../schemas/stage_one.json");
const SCHEMA_ID: u32 = 1;

#[derive(Serialize)]
struct Post {
    postid: String,
    title: String,
}

fn batch(records: usize) -> InputBatchBuilder {
    let encoder = Encoder::new(STAGE_ONE).expect("stage-one schema");
    let mut batch = InputBatchBuilder::default();
    let mut datum = Vec::new();
    for i in 0..records {
        datum.clear();
        let postid = format!("postid_{i}");
        encoder
            .encode_serde(
                &Post {
                    postid: postid.clone(),
                    title: "0123456789abcdef0123456789abcdef".into(),
                },
                &mut datum,
            )
            .expect("encodes");
        let at = RecordPosition {
            partition: 0,
            offset: i as i64,
            timestamp_ms: 0,
        };
        batch.push(Some(postid.as_bytes()), &datum, SCHEMA_ID, at);
    }
    batch
}

fn bench_stage(c: &mut Criterion, name: &str, mut stage: StageInstance) {
    stage
        .add_writer_schema(SCHEMA_ID, STAGE_ONE)
        .expect("writer schema");
    let mut group = c.benchmark_group(name);
    let mut out = OutputBuffer::default();
    for size in [1usize, 10, 100, 1000] {
        let input = batch(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &input, |b, input| {
            b.iter(|| stage.process(input, &mut out).expect("process"))
        });
    }
    group.finish();
}

fn boundary(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/libstage_two.so");
    match Plugin::load(&path) {
        Ok(plugin) => {
            let stage = plugin
                .new_stage(&serde_json::json!({}))
                .expect("stage-two constructs");
            bench_stage(c, "process/plugin", stage);
        }
        Err(e) => eprintln!("skipping the plugin: {e} (cargo build --release -p stage-two)"),
    }
    let linked = plugin_api::linked::stage::<stage_two::StageTwo>(&serde_json::json!({}))
        .expect("stage-two constructs");
    bench_stage(c, "process/linked", linked);
}

criterion_group!(benches, boundary);
criterion_main!(benches);
