//! Producing with acknowledgement tracking: every batch of outputs carries one [`Ack`], and
//! the batch's input offsets are committed only once the broker acknowledged all of them.

use crate::client_events::ClientEvents;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Outstanding deliveries of one batch, and the first delivery error.
#[derive(Default, Debug)]
pub struct Ack {
    pending: AtomicUsize,
    error: Mutex<Option<DeliveryError>>,
}

/// A record the broker did not take.
#[derive(Debug, Clone)]
pub struct DeliveryError {
    /// The topic it was for.
    pub topic: String,
    /// The input record it carries, `topic[partition]@offset`, when the record says (a
    /// dead-lettered record does, in its `stage.source.*` headers).
    pub source: Option<String>,
    /// Why.
    pub error: KafkaError,
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(
                f,
                "delivery of {source} to {} failed: {}",
                self.topic, self.error
            ),
            None => write!(f, "delivery to {} failed: {}", self.topic, self.error),
        }
    }
}

impl DeliveryError {
    /// A failure to deliver to `topic` (the error is librdkafka's "message timed out").
    #[cfg(test)]
    pub(crate) fn for_test(topic: &str) -> DeliveryError {
        DeliveryError {
            topic: topic.to_string(),
            source: None,
            error: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        }
    }

    /// The run error it ends the stage with: a refusal (an ACL) is the cluster's answer
    /// (exit 5), anything else a failed run.
    pub fn into_run_error(self) -> super::RunError {
        let refused = self
            .error
            .rdkafka_error_code()
            .and_then(crate::client_events::refusal_of)
            .is_some();
        if refused {
            super::RunError::Refused(format!(
                "not authorized to write to topic {}: {}",
                self.topic, self.error
            ))
        } else {
            super::RunError::Kafka(self.to_string())
        }
    }
}

impl Ack {
    /// An acknowledgement with `n` deliveries already pending (sends count themselves; this
    /// is for outcomes decided elsewhere, and for tests).
    pub fn pending(n: usize) -> Arc<Ack> {
        let ack = Ack::default();
        ack.pending.store(n, Ordering::Release);
        Arc::new(ack)
    }

    /// One delivery was reported, failed with `error` or not. The first error is kept.
    pub fn acknowledge(&self, error: Option<DeliveryError>) {
        if let Some(error) = error {
            let mut first = self.error.lock().expect("ack lock");
            if first.is_none() {
                *first = Some(error);
            }
        }
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether every delivery of the batch has been reported.
    pub fn done(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// The first delivery error, if any.
    pub fn error(&self) -> Option<DeliveryError> {
        self.error.lock().expect("ack lock").clone()
    }
}

/// Routes librdkafka's delivery reports to the batch [`Ack`]s, and its log lines and global
/// errors to [`ClientEvents`].
#[derive(Default)]
pub struct DeliveryContext {
    /// What librdkafka reported outside of calls (a fatal producer error among them).
    pub events: Arc<ClientEvents>,
}

impl ClientContext for DeliveryContext {
    crate::forward_client_events!(events);
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Arc<Ack>) {
        ack.acknowledge(result.as_ref().err().map(|(error, message)| DeliveryError {
            topic: message.topic().to_string(),
            source: source_of(message),
            error: error.clone(),
        }));
    }
}

/// `topic[partition]@offset` from a dead-lettered record's `stage.source.*` headers.
fn source_of(message: &impl Message) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    Some(format!(
        "{}[{}]@{}",
        header("stage.source.topic")?,
        header("stage.source.partition")?,
        header("stage.source.offset")?
    ))
}

/// The producer type the runners use.
pub type AckingProducer = ThreadedProducer<DeliveryContext>;

/// Sends one record, counted against `ack`. Waits while librdkafka's queue is full instead of
/// failing: back-pressure, not data loss. A `None` payload is a tombstone (a null value).
pub fn send(
    producer: &AckingProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: Option<rdkafka::message::OwnedHeaders>,
    ack: &Arc<Ack>,
) -> Result<(), KafkaError> {
    ack.pending.fetch_add(1, Ordering::AcqRel);
    let mut record = BaseRecord::with_opaque_to(topic, Arc::clone(ack));
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(headers) = headers {
        record = record.headers(headers);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((err, _)) => {
                ack.pending.fetch_sub(1, Ordering::AcqRel);
                return Err(err);
            }
        }
    }
}

/// Creates the producer with the host's throughput settings; with a transactional id, a
/// transactional producer that has fenced any earlier producer with the same id.
pub fn create_producer(
    conn: &crate::settings::Connection,
    transactional_id: Option<&str>,
    watchdog: &crate::watchdog::Watchdog,
) -> Result<AckingProducer, super::RunError> {
    let mut config = conn.producer_config(crate::settings::PRODUCER_DEFAULTS);
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    let producer: AckingProducer = config
        .create_with_context(DeliveryContext::default())
        .map_err(|e| super::RunError::Kafka(format!("creating the producer: {e}")))?;
    if let Some(id) = transactional_id {
        let _call = watchdog.client_call("initialising transactions", conn.connect_timeout());
        producer
            .init_transactions(conn.connect_timeout())
            .map_err(|e| {
                let refused = e
                    .rdkafka_error_code()
                    .and_then(crate::client_events::refusal_of)
                    .is_some();
                let message = format!("initialising transactions for transactional id {id}: {e}");
                if refused {
                    super::RunError::Refused(format!("not authorized: {message}"))
                } else {
                    super::RunError::Kafka(message)
                }
            })?;
    }
    Ok(producer)
}

/// Flushes the producer, waiting at most `timeout`.
pub fn flush(producer: &AckingProducer, timeout: Duration) -> Result<(), KafkaError> {
    producer.flush(timeout)
}
