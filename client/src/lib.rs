//! A typed Avro producer and consumer for Rust programs that want Kafka without writing a
//! stage: the successor of the Python library's `KafkaProducer`/`KafkaConsumer` and their Avro
//! variants.
//!
//! Values are ordinary serde types. They are encoded with the Avro codec stages use
//! (`plugin_api::codec`) and framed the Confluent way (magic byte 0, the 4-byte schema id, the
//! datum), so anything written here reads with confluent-kafka's `AvroDeserializer` and the
//! other way round.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use stage_client::{AvroConsumer, AvroProducer, ClientConfig};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Post { postid: String, title: String }
//!
//! let config = ClientConfig::new("127.0.0.1:9092", "http://127.0.0.1:8081");
//! let schema = std::fs::read_to_string("schemas/stage_one.json")?;
//! let producer = AvroProducer::<Post>::new(&config, "posts", &schema)?;
//! producer.send(Some("p1"), &Post { postid: "p1".into(), title: "hello".into() })?;
//! producer.flush(std::time::Duration::from_secs(10))?;
//!
//! let mut consumer = AvroConsumer::<Post>::new(&config, "posts", "readers")?;
//! if let Some(message) = consumer.poll(std::time::Duration::from_secs(5)) {
//!     println!("{}", message?.value.title);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod consumer;
mod producer;

pub use config::ClientConfig;
pub use confluent::SchemaRegistry;
pub use consumer::{AvroConsumer, Message};
pub use producer::AvroProducer;

/// What can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Kafka refused a setting, or a client call failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The Schema Registry could not be reached or refused.
    #[error("schema registry: {0}")]
    Registry(#[from] confluent::RegistryError),
    /// A value did not encode or decode with its schema.
    #[error("avro: {0}")]
    Avro(String),
    /// A record value is not Confluent-framed Avro.
    #[error("record at {partition}/{offset}: {message}")]
    Framing {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// What is wrong.
        message: String,
    },
    /// Records were not delivered.
    #[error("delivery failed: {0}")]
    Delivery(String),
}
