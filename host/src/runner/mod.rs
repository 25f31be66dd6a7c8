//! Running one stage: the consume → plugin → produce → commit loop ([`stage`]) and the
//! poll → produce loop of a source ([`source`]).

pub mod ack_window;
pub mod batch;
#[cfg(test)]
mod batch_properties;
pub mod checkpoint;
mod commit_ledger;
mod consumer;
pub mod continuity;
pub mod delivery;
pub mod failures;
mod gaps;
mod handover;
pub mod liveness;
#[cfg(test)]
mod loop_on_mock_cluster;
mod schemas;
pub mod source;
pub mod stage;
mod transaction;

use confluent::framing;
use delivery::{Ack, AckingProducer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a run ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A record failed under the `fail` policy.
    #[error("stopping on a failed record (policy fail): {0}")]
    RecordFailed(String),
    /// The plugin failed a whole call, or panicked outside a record.
    #[error("plugin failed: {0}")]
    Plugin(String),
    /// Kafka refused or could not deliver.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The Schema Registry refused.
    #[error("{0}")]
    Registry(String),
    /// Too many recent records failed.
    #[error("circuit breaker open, stopping the stage: {0}")]
    CircuitOpen(String),
    /// The cluster refused: an ACL denies what the stage must do, or its credentials fail.
    #[error("{0}")]
    Refused(String),
    /// The input's offsets jumped, under `--on-offset-gap fail`.
    #[error("{0}")]
    OffsetGap(String),
    /// The consumer consumed nothing with records waiting, also after rejoining its group.
    #[error("consumer stalled, stopping the stage: {0}")]
    Stalled(String),
}

pub use crate::protocol::Counters;

/// Logs progress at most every `every`.
struct ProgressLog {
    every: Duration,
    last: Instant,
}

impl ProgressLog {
    fn new(every: Duration) -> Self {
        ProgressLog {
            every,
            last: Instant::now(),
        }
    }

    fn maybe_log(&mut self, stats: &Counters, lag: Option<u64>) {
        crate::status_report::counters(stats, lag);
        if self.last.elapsed() >= self.every {
            self.last = Instant::now();
            tracing::info!(
                records_in = stats.records_in,
                records_out = stats.records_out,
                skipped = stats.skipped,
                dead_lettered = stats.dead_lettered,
                "progress"
            );
        }
    }
}

/// Where outputs go: the output topic, framed with the registered schema ids.
pub struct OutputTopic {
    /// Topic name.
    pub topic: String,
    /// Registry id of the output value schema.
    pub value_schema_id: u32,
    /// Registry id of the output key schema, when the stage declares one.
    pub key_schema_id: Option<u32>,
}

impl OutputTopic {
    /// Frames and sends one output, counted against `ack`; with `source`, stamped with the
    /// input position it came from (`stage.source.topic`, `.partition`, `.offset` headers,
    /// as dead letters carry), so a reader can pair outputs with inputs (a canary does).
    fn send(
        &self,
        producer: &AckingProducer,
        scratch: &mut OutputScratch,
        key: Option<&[u8]>,
        datum: &[u8],
        source: Option<(&str, plugin_host::RecordPosition)>,
        ack: &Arc<Ack>,
    ) -> Result<(), RunError> {
        framing::frame_into(self.value_schema_id, datum, &mut scratch.value);
        let key = match (key, self.key_schema_id) {
            (Some(k), Some(id)) => {
                framing::frame_into(id, k, &mut scratch.key);
                Some(scratch.key.as_slice())
            }
            (key, _) => key,
        };
        let headers = source.map(|(topic, at)| position_headers(topic, at));
        delivery::send(
            producer,
            &self.topic,
            key,
            Some(&scratch.value),
            headers,
            ack,
        )
        .map_err(|e| RunError::Kafka(format!("producing to {}: {e}", self.topic)))
    }
}

/// The headers naming an output's input position.
fn position_headers(
    topic: &str,
    at: plugin_host::RecordPosition,
) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    let partition = at.partition.to_string();
    let offset = at.offset.to_string();
    OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: "stage.source.topic",
            value: Some(topic),
        })
        .insert(Header {
            key: "stage.source.partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "stage.source.offset",
            value: Some(offset.as_str()),
        })
}

/// Reused buffers for framing, so producing allocates nothing per record.
#[derive(Default)]
struct OutputScratch {
    key: Vec<u8>,
    value: Vec<u8>,
}
