//! A typed Avro producer.
//!
//! Unlike the Python library's producer, it never flushes per record: `send` queues, and
//! librdkafka batches in the background; `flush` waits and reports any failed delivery.

use crate::{ClientConfig, ClientError};
use confluent::framing::frame;
use plugin_api::codec::Encoder;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::Duration;

/// Remembers the first delivery failure so `flush` can report it.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<(u64, Option<String>)>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut failed = self.failed.lock().expect("not poisoned");
            failed.0 += 1;
            failed.1.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Produces `T` values to one topic as Confluent-framed Avro.
pub struct AvroProducer<T> {
    producer: ThreadedProducer<Deliveries>,
    topic: String,
    schema_id: u32,
    encoder: Encoder,
    _value: PhantomData<fn(&T)>,
}

impl<T: Serialize> AvroProducer<T> {
    /// Registers `schema_json` under `<topic>-value` and connects. Idempotent and acks=all, so
    /// retries neither duplicate nor reorder.
    pub fn new(config: &ClientConfig, topic: &str, schema_json: &str) -> Result<Self, ClientError> {
        let encoder = Encoder::new(schema_json).map_err(|e| ClientError::Avro(e.to_string()))?;
        let schema_id = config
            .registry()?
            .register(&format!("{topic}-value"), schema_json)?;
        let producer = config
            .kafka(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
            ])
            .create_with_context(Deliveries::default())?;
        Ok(AvroProducer {
            producer,
            topic: topic.to_string(),
            schema_id,
            encoder,
            _value: PhantomData,
        })
    }

    /// The registry id values are written with.
    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// Queues one record. A value that does not fit the schema is an error here; a delivery
    /// failure shows in [`flush`](Self::flush).
    pub fn send(&self, key: Option<&str>, value: &T) -> Result<(), ClientError> {
        let mut datum = Vec::new();
        self.encoder
            .encode_serde(value, &mut datum)
            .map_err(|e| ClientError::Avro(e.to_string()))?;
        let payload = frame(self.schema_id, &datum);
        let mut record = BaseRecord::to(&self.topic).payload(&payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    // Back-pressure: wait for deliveries to free the queue.
                    record = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits until every queued record is delivered; reports failed deliveries since the
    /// last flush.
    pub fn flush(&self, timeout: Duration) -> Result<(), ClientError> {
        self.producer.flush(timeout)?;
        let mut failed = self.producer.context().failed.lock().expect("not poisoned");
        match std::mem::take(&mut *failed) {
            (0, _) => Ok(()),
            (n, first) => Err(ClientError::Delivery(format!(
                "{n} records were not delivered; first error: {}",
                first.unwrap_or_default()
            ))),
        }
    }
}
