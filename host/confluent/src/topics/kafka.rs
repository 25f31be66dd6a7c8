//! Topic administration through the Kafka Admin API (metadata, CreateTopics, DeleteTopics,
//! DescribeConfigs).

use super::{NewTopic, PartitionInfo, TopicAdmin, TopicError, TopicInfo};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier, TopicReplication, TopicResult};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;
use std::time::Duration;

/// The Admin API of the cluster a client configuration points at.
pub struct KafkaAdmin {
    config: ClientConfig,
    timeout: Duration,
}

impl KafkaAdmin {
    /// Administers the cluster of `config` (its `bootstrap.servers` and security settings),
    /// waiting at most `timeout` for each answer.
    pub fn new(config: ClientConfig, timeout: Duration) -> Self {
        KafkaAdmin { config, timeout }
    }

    /// Whether `topic`'s `cleanup.policy` includes `compact` (its offsets have gaps by design).
    pub fn is_compacted(&self, topic: &str) -> Result<bool, TopicError> {
        Ok(self
            .topic_setting(topic, "cleanup.policy")?
            .is_some_and(|policy| policy.contains("compact")))
    }

    /// The value of one of `topic`'s settings (`min.insync.replicas`, `cleanup.policy`) as the
    /// broker applies it: the topic's own, or else the broker's default. `None` when the
    /// broker names no such setting.
    pub fn topic_setting(&self, topic: &str, name: &str) -> Result<Option<String>, TopicError> {
        let admin = self.admin()?;
        let options = AdminOptions::new().request_timeout(Some(self.timeout));
        let results =
            block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))?
                .map_err(|e| self.unreachable(e))?;
        let resource = results
            .into_iter()
            .next()
            .ok_or_else(|| {
                TopicError::Refused(format!("no configuration of topic {topic} in the answer"))
            })?
            .map_err(|code| TopicError::Refused(format!("describing topic {topic}: {code}")))?;
        Ok(resource.get(name).and_then(|entry| entry.value.clone()))
    }

    /// The value of one of the brokers' settings (`min.insync.replicas`: what a topic created
    /// without its own gets), as the first broker the metadata names applies it. `None` when
    /// the broker names no such setting.
    pub fn broker_setting(&self, name: &str) -> Result<Option<String>, TopicError> {
        let broker = self.any_broker()?;
        let admin = self.admin()?;
        let options = AdminOptions::new().request_timeout(Some(self.timeout));
        let results =
            block_on(admin.describe_configs([&ResourceSpecifier::Broker(broker)], &options))?
                .map_err(|e| self.unreachable(e))?;
        let resource = results
            .into_iter()
            .next()
            .ok_or_else(|| {
                TopicError::Refused(format!("no configuration of broker {broker} in the answer"))
            })?
            .map_err(|code| TopicError::Refused(format!("describing broker {broker}: {code}")))?;
        Ok(resource.get(name).and_then(|entry| entry.value.clone()))
    }

    /// The id of a broker of the cluster.
    fn any_broker(&self) -> Result<i32, TopicError> {
        let mut config = self.config.clone();
        config.set("allow.auto.create.topics", "false");
        let client: BaseProducer = config
            .create()
            .map_err(|e| TopicError::Refused(format!("invalid Kafka client settings: {e}")))?;
        // Any answer lists the brokers; asking for one internal topic keeps it small.
        let metadata = client
            .client()
            .fetch_metadata(Some("__consumer_offsets"), self.timeout)
            .map_err(|e| self.unreachable(e))?;
        metadata
            .brokers()
            .first()
            .map(|b| b.id())
            .ok_or_else(|| self.unreachable("the metadata names no broker"))
    }

    fn metadata(&self, topic: Option<&str>) -> Result<Vec<TopicInfo>, TopicError> {
        // A metadata request must never create the topic it asks about. A producer asks: a
        // consumer would check the consumer's fetch sizes against `receive.message.max.bytes`,
        // which an operator may set for the stage's consumer (`-X`) without the fetch sizes
        // that go with it, as those reach consumers only.
        let mut config = self.config.clone();
        config.set("allow.auto.create.topics", "false");
        let client: BaseProducer = config
            .create()
            .map_err(|e| TopicError::Refused(format!("invalid Kafka client settings: {e}")))?;
        let metadata = client
            .client()
            .fetch_metadata(topic, self.timeout)
            .map_err(|e| self.unreachable(e))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| {
                let mut detail: Vec<PartitionInfo> = t
                    .partitions()
                    .iter()
                    .map(|p| PartitionInfo {
                        id: p.id(),
                        leader: p.leader(),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                    })
                    .collect();
                detail.sort_by_key(|p| p.id);
                TopicInfo {
                    name: t.name().to_string(),
                    partitions: detail.len(),
                    replication_factor: detail.first().map_or(0, |p| p.replicas.len()),
                    partition_detail: detail,
                }
            })
            .collect())
    }

    fn servers(&self) -> String {
        format!(
            "Kafka at {}",
            self.config
                .get("bootstrap.servers")
                .unwrap_or("(no bootstrap.servers)")
        )
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> TopicError {
        TopicError::Unreachable {
            servers: self.servers(),
            message: crate::one_line(e),
        }
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, TopicError> {
        self.config
            .create()
            .map_err(|e| TopicError::Refused(format!("invalid Kafka client settings: {e}")))
    }
}

/// rdkafka's admin calls are futures; these callers are not async.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, TopicError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TopicError::Refused(format!("cannot start an async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// What a CreateTopics or DeleteTopics answer means: `Ok(true)` done, `Ok(false)` when the
/// broker answered `already` (the topic was already as asked: there, or gone), a refusal
/// naming the topic otherwise.
fn outcome(
    results: Vec<TopicResult>,
    already: RDKafkaErrorCode,
    doing: &str,
) -> Result<bool, TopicError> {
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, code)) if code == already => return Ok(false),
            Err((name, code)) => {
                return Err(TopicError::Refused(format!(
                    "{doing} topic {name} failed: {code}"
                )))
            }
        }
    }
    Ok(true)
}

impl TopicAdmin for KafkaAdmin {
    fn list(&self) -> Result<Vec<TopicInfo>, TopicError> {
        let mut topics = self.metadata(None)?;
        topics.iter_mut().for_each(|t| t.partition_detail.clear());
        Ok(topics)
    }

    fn describe(&self, topic: &str) -> Result<Option<TopicInfo>, TopicError> {
        Ok(self
            .metadata(Some(topic))?
            .into_iter()
            .find(|t| t.name == topic))
    }

    fn create(&self, topic: &NewTopic<'_>) -> Result<bool, TopicError> {
        if self.exists(topic.name)? {
            return Ok(false);
        }
        let admin = self.admin()?;
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let mut new = rdkafka::admin::NewTopic::new(
            topic.name,
            topic.partitions,
            TopicReplication::Fixed(i32::from(topic.replication_factor)),
        );
        for (key, value) in topic.config {
            new = new.set(key, value);
        }
        let results =
            block_on(admin.create_topics([&new], &options))?.map_err(|e| self.unreachable(e))?;
        outcome(results, RDKafkaErrorCode::TopicAlreadyExists, "creating")
    }

    fn delete(&self, topic: &str) -> Result<bool, TopicError> {
        if !self.exists(topic)? {
            return Ok(false);
        }
        let admin = self.admin()?;
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results =
            block_on(admin.delete_topics(&[topic], &options))?.map_err(|e| self.unreachable(e))?;
        outcome(
            results,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            "deleting",
        )
    }
}
