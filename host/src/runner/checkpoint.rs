//! Source checkpoints: where a source stood after the records that reached Kafka, kept in a
//! compacted topic so that a restarted source resumes instead of starting over.
//!
//! A source has no input offsets for the group to commit, so its progress must be stored
//! beside its output. Each checkpoint is one record keyed by the source's identity (its
//! transactional id, stable per replica):
//! - under `--exactly-once` it is produced in the same transaction as the poll's records, so
//!   records and checkpoint become visible together or not at all (the approach of Kafka
//!   Connect's exactly-once sources, KIP-618);
//! - otherwise it is produced once every record up to it is acknowledged, so it never runs
//!   ahead of the output: after a crash the source repeats at most what followed its last
//!   checkpoint (at-least-once), and loses nothing.
//!
//! The topic has one partition and `cleanup.policy=compact`, so it holds about one record per
//! source and is read from the start at each start-up, with `read_committed`.

use super::delivery::{self, Ack, AckingProducer};
use super::RunError;
use crate::settings::Connection;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The topic sources keep their checkpoints in, unless `--checkpoint-topic` names another.
pub const DEFAULT_CHECKPOINT_TOPIC: &str = "stage-host-source-checkpoints";

/// Topic settings the checkpoint topic is created with: only the last record per key matters.
pub const CHECKPOINT_TOPIC_CONFIG: &[(&str, &str)] = &[("cleanup.policy", "compact")];

/// Where one source's checkpoints go.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    /// The compacted topic.
    pub topic: String,
    /// The source's identity: the key of its checkpoints.
    pub key: String,
}

impl CheckpointStore {
    /// Reads the source's last committed checkpoint, or `None` if it never stored one.
    pub fn load(&self, conn: &Connection) -> Result<Option<String>, RunError> {
        let consumer: BaseConsumer = conn
            .consumer_config(&[
                // librdkafka wants a group even for an assigned partition; nothing is committed
                // and the group never forms (no subscription).
                ("group.id", "stage-host-checkpoint-reader"),
                ("isolation.level", "read_committed"),
                ("enable.partition.eof", "true"),
                ("enable.auto.commit", "false"),
            ])
            .create()
            .map_err(|e| RunError::Kafka(format!("creating the checkpoint reader: {e}")))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Beginning)
            .map_err(|e| RunError::Kafka(e.to_string()))?;
        consumer
            .assign(&tpl)
            .map_err(|e| RunError::Kafka(format!("reading {}: {e}", self.topic)))?;
        let deadline = Instant::now() + conn.connect_timeout();
        let mut last = None;
        loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) if message.key() == Some(self.key.as_bytes()) => {
                    last = message
                        .payload()
                        .map(|p| String::from_utf8_lossy(p).into_owned());
                }
                Some(Ok(_)) => {}
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(last),
                Some(Err(e))
                    if e.rdkafka_error_code()
                        == Some(RDKafkaErrorCode::UnknownTopicOrPartition) =>
                {
                    return Ok(None)
                }
                Some(Err(e)) => tracing::warn!(error = %e, "reading checkpoints"),
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(RunError::Kafka(format!(
                    "reading the source's checkpoint from {} did not reach its end within {:?}",
                    self.topic,
                    conn.connect_timeout()
                )));
            }
        }
    }

    /// Produces `checkpoint`, counted against `ack` (inside the open transaction, if any).
    pub fn send(
        &self,
        producer: &AckingProducer,
        checkpoint: &str,
        ack: &Arc<Ack>,
    ) -> Result<(), RunError> {
        delivery::send(
            producer,
            &self.topic,
            Some(self.key.as_bytes()),
            Some(checkpoint.as_bytes()),
            None,
            ack,
        )
        .map_err(|e| RunError::Kafka(format!("producing the checkpoint to {}: {e}", self.topic)))
    }
}
