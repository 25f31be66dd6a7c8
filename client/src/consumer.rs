//! A typed Avro consumer: decodes each record with the writer schema its id names (fetched
//! once per id), optionally resolved to a reader schema, into `T`.

use crate::{ClientConfig, ClientError};
use confluent::framing;
use confluent::SchemaRegistry;
use plugin_api::codec::Decoder;
use plugin_api::FromAvro;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::Message as _;
use std::collections::HashSet;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// One decoded record.
#[derive(Debug, Clone)]
pub struct Message<T> {
    /// The key bytes (`None` for a null key).
    pub key: Option<Vec<u8>>,
    /// The decoded value.
    pub value: T,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms, if any.
    pub timestamp_ms: Option<i64>,
}

impl<T> Message<T> {
    /// The key as UTF-8 text, if it is.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }
}

/// Consumes `T` values from one topic in a consumer group. Offsets are committed when the
/// program says so ([`commit`](Self::commit)), so a record is not lost if the program stops
/// before handling it.
pub struct AvroConsumer<T> {
    consumer: BaseConsumer,
    registry: SchemaRegistry,
    decoder: Decoder,
    known_ids: HashSet<u32>,
    _value: PhantomData<fn() -> T>,
}

impl<T: FromAvro> AvroConsumer<T> {
    /// Subscribes to `topic` in `group_id`, reading values as they were written.
    pub fn new(config: &ClientConfig, topic: &str, group_id: &str) -> Result<Self, ClientError> {
        Self::with_reader_schema(config, topic, group_id, None)
    }

    /// Subscribes, resolving every value to `reader_schema` (Avro schema evolution: new
    /// fields get their defaults, removed ones are dropped).
    pub fn with_reader_schema(
        config: &ClientConfig,
        topic: &str,
        group_id: &str,
        reader_schema: Option<&str>,
    ) -> Result<Self, ClientError> {
        let decoder = Decoder::new(reader_schema).map_err(|e| ClientError::Avro(e.to_string()))?;
        let consumer: BaseConsumer = config
            .kafka(&[
                ("group.id", group_id),
                ("enable.auto.commit", "false"),
                ("auto.offset.reset", "earliest"),
                ("session.timeout.ms", "6000"),
            ])
            .create()?;
        consumer.subscribe(&[topic])?;
        Ok(AvroConsumer {
            consumer,
            registry: config.registry()?,
            decoder,
            known_ids: HashSet::new(),
            _value: PhantomData,
        })
    }

    /// Waits up to `timeout` for the next record. `None`: nothing arrived.
    pub fn poll(&mut self, timeout: Duration) -> Option<Result<Message<T>, ClientError>> {
        // librdkafka's poll also returns early after serving a rebalance event, so keep
        // polling until a record arrives or the whole timeout has passed.
        let deadline = Instant::now() + timeout;
        let message = loop {
            match self
                .consumer
                .poll(deadline.saturating_duration_since(Instant::now()))
            {
                Some(Ok(m)) => break m,
                Some(Err(e)) => return Some(Err(e.into())),
                None if Instant::now() >= deadline => return None,
                None => {}
            }
        };
        let (partition, offset) = (message.partition(), message.offset());
        let framing = |e: framing::FramingError| ClientError::Framing {
            partition,
            offset,
            message: e.to_string(),
        };
        let decoded = (|| {
            let (id, datum) =
                framing::strip(message.payload().unwrap_or_default()).map_err(framing)?;
            if self.known_ids.insert(id) {
                let schema = self.registry.schema_by_id(id)?;
                self.decoder
                    .add_writer_schema(id, &schema)
                    .map_err(|e| ClientError::Avro(e.to_string()))?;
            }
            self.decoder
                .decode_into::<T>(id, datum)
                .map_err(|e| ClientError::Avro(e.to_string()))
        })();
        Some(decoded.map(|value| Message {
            key: message.key().map(<[u8]>::to_vec),
            value,
            partition,
            offset,
            timestamp_ms: message.timestamp().to_millis(),
        }))
    }

    /// Commits the offsets of everything polled so far (synchronously).
    pub fn commit(&self) -> Result<(), ClientError> {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing polled since the last commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => Ok(()),
            other => other.map_err(Into::into),
        }
    }

    /// Calls `handle` for each record until it returns `false` or `idle` passes without a
    /// record, committing after each handled record (the Python `listen` loop).
    pub fn listen(
        &mut self,
        idle: Duration,
        mut handle: impl FnMut(Result<Message<T>, ClientError>) -> bool,
    ) -> Result<(), ClientError> {
        while let Some(result) = self.poll(idle) {
            let go_on = handle(result);
            self.commit()?;
            if !go_on {
                break;
            }
        }
        Ok(())
    }
}
