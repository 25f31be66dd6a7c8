//! Topic administration behind one trait, [`TopicAdmin`], served by the Kafka Admin API
//! ([`KafkaAdmin`]) or the REST Proxy v3 ([`RestProxy`], the only way the Python library had).
//! Both name the same failure the same way: no answer is [`TopicError::Unreachable`], a
//! definite answer that refuses is [`TopicError::Refused`].

mod kafka;
mod rest_proxy;

pub use kafka::KafkaAdmin;
pub use rest_proxy::RestProxy;

use crate::Failure;
use serde::Serialize;

/// A topic operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The broker or REST Proxy did not answer, or answered with a server error.
    #[error("cannot reach {servers}: {message}")]
    Unreachable {
        /// Who was asked: the bootstrap servers, or the REST Proxy.
        servers: String,
        /// What failed.
        message: String,
    },
    /// The broker or REST Proxy refused.
    #[error("{0}")]
    Refused(String),
}

impl TopicError {
    /// The kind of failure.
    pub fn failure(&self) -> Failure {
        match self {
            TopicError::Unreachable { .. } => Failure::Unreachable,
            TopicError::Refused(_) => Failure::Refused,
        }
    }
}

/// A topic as an admin command shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: usize,
    /// Replicas of each partition.
    pub replication_factor: usize,
    /// Leader, replicas and in-sync replicas of each partition: given by `describe` through
    /// either back end, left out of `list`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_detail: Vec<PartitionInfo>,
}

/// One partition of a described topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition id.
    pub id: i32,
    /// Broker id of the leader.
    pub leader: i32,
    /// Broker ids of the replicas.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
}

/// A topic to create.
#[derive(Debug, Clone, Copy)]
pub struct NewTopic<'a> {
    /// Topic name.
    pub name: &'a str,
    /// Partition count.
    pub partitions: i32,
    /// Replicas of each partition.
    pub replication_factor: i16,
    /// Topic settings, e.g. `cleanup.policy=compact`.
    pub config: &'a [(&'a str, &'a str)],
}

/// The topic operations both back ends offer.
pub trait TopicAdmin {
    /// Every topic (without partition detail).
    fn list(&self) -> Result<Vec<TopicInfo>, TopicError>;
    /// One topic; `None` when it does not exist.
    fn describe(&self, topic: &str) -> Result<Option<TopicInfo>, TopicError>;
    /// Creates a topic; `Ok(false)` when it already exists (left as it is, whatever its
    /// settings: a concurrent creator may have won the race).
    fn create(&self, topic: &NewTopic<'_>) -> Result<bool, TopicError>;
    /// Deletes a topic; `Ok(false)` when it does not exist.
    fn delete(&self, topic: &str) -> Result<bool, TopicError>;
    /// Whether the topic exists.
    fn exists(&self, topic: &str) -> Result<bool, TopicError> {
        Ok(self.describe(topic)?.is_some())
    }
}
