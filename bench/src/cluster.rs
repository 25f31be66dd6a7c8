//! The benchmark's view of the cluster: topics it creates and deletes (every run deletes what it
//! made, so a long series of runs does not fill the broker's disk), the registry, and committed
//! offsets, which is how
//! completion of a stage that never exits on its own is detected.

use anyhow::{bail, Context, Result};
use confluent::SchemaRegistry;
use confluent::{KafkaAdmin, NewTopic, TopicAdmin};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use stage_host::Connection;
use std::time::Duration;

/// Admin, registry and metadata clients, and the topics made so far.
pub struct Cluster {
    conn: Connection,
    admin: KafkaAdmin,
    metadata: BaseConsumer,
    registry: SchemaRegistry,
    created: Vec<String>,
}

const TIMEOUT: Duration = Duration::from_secs(15);

impl Cluster {
    /// Connects (lazily; the first request fails if the broker is down).
    pub fn new(conn: &Connection) -> Result<Self> {
        let admin = KafkaAdmin::new(conn.client_config(&[]), TIMEOUT);
        let metadata = conn
            .client_config(&[("allow.auto.create.topics", "false")])
            .create()
            .context("metadata client")?;
        let registry = conn.registry()?;
        Ok(Cluster {
            conn: conn.clone(),
            admin,
            metadata,
            registry,
            created: Vec::new(),
        })
    }

    /// The connection settings.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The Schema Registry.
    pub fn registry(&self) -> &SchemaRegistry {
        &self.registry
    }

    /// Creates `topic` with `partitions` partitions; it is deleted by [`Cluster::delete_created`].
    pub fn create_topic(&mut self, topic: &str, partitions: i32) -> Result<()> {
        let created = self
            .admin
            .create(&NewTopic {
                name: topic,
                partitions,
                replication_factor: 1,
                config: &[],
            })
            .with_context(|| format!("creating topic {topic}"))?;
        if !created {
            bail!("topic {topic} exists already");
        }
        self.created.push(topic.to_string());
        Ok(())
    }

    /// Deletes one topic now, if this run made it (the broker keeps records on disk).
    pub fn delete_topic(&mut self, topic: &str) {
        if let Some(i) = self.created.iter().position(|t| t == topic) {
            self.created.remove(i);
            self.delete_one(topic);
        }
    }

    /// Deletes every topic this run made or adopted (missing ones are ignored).
    pub fn delete_created(&mut self) {
        for topic in std::mem::take(&mut self.created) {
            self.delete_one(&topic);
        }
    }

    fn delete_one(&self, topic: &str) {
        match self.admin.delete(topic) {
            Ok(true) => tracing::info!(topic, "deleted topic"),
            Ok(false) => tracing::debug!(topic, "topic not deleted: it does not exist"),
            Err(e) => tracing::warn!(topic, error = %e, "deleting a benchmark topic failed"),
        }
    }

    /// The number of partitions of `topic` (0 while it does not exist).
    pub fn partitions(&self, topic: &str) -> Result<i32> {
        let metadata = self
            .metadata
            .fetch_metadata(Some(topic), TIMEOUT)
            .with_context(|| format!("metadata of {topic}"))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0))
    }

    /// The sum over `topic`'s partitions of the offsets `group` committed: the number of input
    /// records a stage has finished (it commits only after the outputs are acknowledged).
    /// High watermarks cannot tell this: they count transaction markers too.
    pub fn committed_total(
        &self,
        group: &GroupOffsets,
        topic: &str,
        partitions: i32,
    ) -> Result<u64> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = group
            .0
            .committed_offsets(tpl, TIMEOUT)
            .with_context(|| format!("committed offsets of {topic}"))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) if o > 0 => o as u64,
                _ => 0,
            })
            .sum())
    }

    /// A client that reads `group`'s committed offsets without joining it.
    ///
    /// Read uncommitted: a `read_committed` client asks for stable offsets only (KIP-447), and
    /// an exactly-once stage has a transaction open nearly all the time, so the broker would
    /// answer "unstable" until the request timed out. Offsets committed in a transaction
    /// count once it commits either way.
    pub fn group_offsets(&self, group: &str) -> Result<GroupOffsets> {
        let consumer = self
            .conn
            .consumer_config(&[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_uncommitted"),
            ])
            .create()
            .context("offsets client")?;
        Ok(GroupOffsets(consumer))
    }
}

/// Reads one group's committed offsets (see [`Cluster::group_offsets`]).
pub struct GroupOffsets(BaseConsumer);

impl Drop for Cluster {
    fn drop(&mut self) {
        self.delete_created();
    }
}
