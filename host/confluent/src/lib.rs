//! The Confluent layer: what the host, its admin commands, the dry run, the client library and
//! the benchmark share about the Confluent platform around Kafka.
//!
//! - [`framing`]: the wire format of a record (magic byte, schema id, Avro datum);
//! - [`registry`]: the Schema Registry client (subjects escaped in URLs, basic auth, TLS
//!   through the system's roots or a given CA, retries of what may heal, compatibility checks,
//!   and the caches of ids and schemas);
//! - [`topics`]: topic administration behind one trait, [`topics::TopicAdmin`], served by the
//!   Kafka Admin API or the REST Proxy v3.
//!
//! Every error here is of one of two kinds, [`Failure`]: the service did not answer (worth
//! retrying, an operator looks at the network), or it answered with a refusal (a retry gets
//! the same answer). The host maps the kind to its exit code in one place.

pub mod framing;
mod http;
pub mod registry;
pub mod topics;

pub use framing::FramingError;
pub use registry::{RegistryError, RegistrySettings, SchemaRegistry, Verdict};
pub use topics::{
    KafkaAdmin, NewTopic, PartitionInfo, RestProxy, TopicAdmin, TopicError, TopicInfo,
};

/// The two ways a call to the cluster's services fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer (connection refused, timeout) or a server error: retrying may succeed.
    Unreachable,
    /// A definite answer that refuses (unknown id, incompatible schema, denied, invalid).
    Refused,
}

/// Folds a message that spans lines (registry errors do) into one line, so every failure is
/// one log line.
pub fn one_line(text: impl std::fmt::Display) -> String {
    text.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
