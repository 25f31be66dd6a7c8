//! Input data: stage-one records (`{postid, title}` keyed by the post id, Confluent-framed
//! with the registered schema id), as the example pipeline's source writes them.

use crate::cluster::Cluster;
use anyhow::{Context, Result};
use confluent::framing;
use plugin_api::codec::Encoder;
use rdkafka::producer::Producer;
use serde::Serialize;
use stage_host::runner_parts::{self as delivery, Ack, AckingProducer, DeliveryContext};
use stage_host::PRODUCER_DEFAULTS;
use std::sync::Arc;
use std::time::Duration;

/// The stage-one value schema.
pub const STAGE_ONE_SCHEMA: &str = include_str!("../../schemas/stage_one.json");

/// Partitions of every input topic, as stage one declares.
pub const INPUT_PARTITIONS: i32 = 4;

/// A stage-one value.
#[derive(Serialize)]
struct Post<'a> {
    postid: &'a str,
    title: &'a str,
}

/// Builds framed stage-one records.
pub struct RecordMaker {
    encoder: Encoder,
    schema_id: u32,
    datum: Vec<u8>,
}

impl RecordMaker {
    /// Registers the stage-one schema for `topic` and prepares the encoder.
    pub fn for_topic(cluster: &Cluster, topic: &str) -> Result<Self> {
        let schema_id = cluster
            .registry()
            .register(&format!("{topic}-value"), STAGE_ONE_SCHEMA)?;
        Ok(RecordMaker {
            encoder: Encoder::new(STAGE_ONE_SCHEMA)?,
            schema_id,
            datum: Vec::new(),
        })
    }

    /// The framed value for `postid` into `out` (cleared first).
    pub fn value(&mut self, postid: &str, out: &mut Vec<u8>) -> Result<()> {
        let title = uuid::Uuid::new_v4().simple().to_string();
        self.datum.clear();
        self.encoder.encode_serde(
            &Post {
                postid,
                title: &title,
            },
            &mut self.datum,
        )?;
        framing::frame_into(self.schema_id, &self.datum, out);
        Ok(())
    }
}

/// What was preloaded.
#[derive(Debug, Clone, Copy)]
pub struct Preloaded {
    /// Records.
    pub records: u64,
    /// Key plus value bytes of all records.
    pub bytes: u64,
}

/// Creates `topic` and writes `records` stage-one records to it.
pub fn preload(cluster: &mut Cluster, topic: &str, records: u64) -> Result<Preloaded> {
    cluster.create_topic(topic, INPUT_PARTITIONS)?;
    let mut maker = RecordMaker::for_topic(cluster, topic)?;
    let bytes = write_records(cluster, &mut maker, topic, records)?;
    Ok(Preloaded { records, bytes })
}

/// Writes `records` stage-one records (keys `postid_0`...) into the existing `topic` and
/// waits until the broker has them all; returns their key plus value bytes.
pub fn write_records(
    cluster: &Cluster,
    maker: &mut RecordMaker,
    topic: &str,
    records: u64,
) -> Result<u64> {
    let producer: AckingProducer = cluster
        .conn()
        .producer_config(PRODUCER_DEFAULTS)
        .create_with_context(DeliveryContext::default())
        .context("input producer")?;
    let ack = Arc::new(Ack::default());
    let mut value = Vec::new();
    let mut bytes = 0u64;
    for i in 0..records {
        let key = format!("postid_{i}");
        maker.value(&key, &mut value)?;
        bytes += (key.len() + value.len()) as u64;
        delivery::send(
            &producer,
            topic,
            Some(key.as_bytes()),
            Some(&value),
            None,
            &ack,
        )
        .with_context(|| format!("writing {topic}"))?;
    }
    producer
        .flush(Duration::from_secs(120))
        .with_context(|| format!("flushing {topic}"))?;
    if let Some(error) = ack.error() {
        anyhow::bail!("writing {topic}: {error}");
    }
    Ok(bytes)
}

/// Whether librdkafka's local queue is full (back off and retry).
pub fn is_queue_full(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e,
        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)
    )
}
