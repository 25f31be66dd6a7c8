//! The ceiling: a raw consume → produce of the bytes, with no framing, decoding or plugin, but
//! with everything else the host does: its librdkafka settings, batches of the same size,
//! at most as many batches in flight, and offsets committed only after the broker
//! acknowledged every record of a batch.

use crate::cli::ChildArgs;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use stage_host::runner_parts::AckWindow;
use stage_host::runner_parts::{self as delivery, Ack, AckingProducer, DeliveryContext};
use stage_host::Shutdown;
use stage_host::{Connection, CONSUMER_DEFAULTS, PRODUCER_DEFAULTS};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Batches whose outputs may be in flight at once, as the host runs.
const MAX_IN_FLIGHT_BATCHES: usize = 8;

/// Runs the passthrough until SIGTERM.
pub fn run(conn: &Connection, args: &ChildArgs, shutdown: &Shutdown) -> Result<()> {
    let mut consumer_config = conn.consumer_config(CONSUMER_DEFAULTS);
    consumer_config.set("group.id", &args.group_id);
    let consumer: BaseConsumer = consumer_config.create().context("consumer")?;
    consumer.subscribe(&[&args.input_topic])?;
    let producer: AckingProducer = conn
        .producer_config(PRODUCER_DEFAULTS)
        .create_with_context(DeliveryContext::default())
        .context("producer")?;
    let mut in_flight: AckWindow<BTreeMap<i32, i64>> = AckWindow::default();
    let batch_wait = Duration::from_millis(args.batch_wait_ms);
    let mut records = 0u64;
    while !shutdown.requested() {
        let ack = Ack::pending(0);
        let mut next_offsets = BTreeMap::new();
        let mut taken = 0;
        let mut deadline: Option<Instant> = None;
        while taken < args.batch_size && !shutdown.requested() {
            let timeout = match deadline {
                None => Duration::from_millis(100),
                Some(d) => d.saturating_duration_since(Instant::now()),
            };
            let message = match consumer.poll(timeout) {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => m,
            };
            deadline.get_or_insert_with(|| Instant::now() + batch_wait);
            delivery::send(
                &producer,
                &args.output_topic,
                message.key(),
                message.payload(),
                None,
                &ack,
            )?;
            next_offsets.insert(message.partition(), message.offset() + 1);
            taken += 1;
        }
        records += taken as u64;
        if taken > 0 {
            in_flight.push(ack, next_offsets);
        }
        while in_flight.len() > MAX_IN_FLIGHT_BATCHES {
            commit_acknowledged(
                &consumer,
                &args.input_topic,
                &mut in_flight,
                CommitMode::Async,
            )?;
            if in_flight.len() > MAX_IN_FLIGHT_BATCHES {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        commit_acknowledged(
            &consumer,
            &args.input_topic,
            &mut in_flight,
            CommitMode::Async,
        )?;
    }
    delivery::flush(&producer, Duration::from_secs(30))?;
    commit_acknowledged(
        &consumer,
        &args.input_topic,
        &mut in_flight,
        CommitMode::Sync,
    )?;
    tracing::info!(records, "passthrough stopped");
    Ok(())
}

/// Commits the offsets of the acknowledged prefix of in-flight batches.
fn commit_acknowledged(
    consumer: &BaseConsumer,
    topic: &str,
    in_flight: &mut AckWindow<BTreeMap<i32, i64>>,
    mode: CommitMode,
) -> Result<()> {
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    in_flight
        .release_acknowledged(|done| offsets.extend(done))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in offsets {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        tracing::warn!(error = %e, "commit failed");
    }
    Ok(())
}
