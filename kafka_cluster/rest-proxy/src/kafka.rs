//! The broker side: cluster id, topic metadata and topic creation/deletion via the Admin API.
//!
//! Metadata is always fetched for *all* topics and filtered here. Asking librdkafka for one
//! named topic can make a broker with `auto.create.topics.enable` create it, and a GET must
//! never create anything.
//!
//! CreateTopics and DeleteTopics return before every broker's metadata reflects the change
//! (Kafka answers CreateTopics before its metadata cache has it), so [`KafkaAdmin::wait_for_topic`] polls briefly until the change is
//! visible. That keeps "create, then GET" from a client consistent without fixed sleeps.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

/// Topics Kafka itself marks as internal.
const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// How often [`KafkaAdmin::wait_for_topic`] re-reads metadata.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A failure talking to the broker, classified the way the REST API reports it.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// CreateTopics for a name that exists.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// The topic is not in the broker's metadata.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// The broker rejected the request's contents (partitions, replication, name, configs).
    #[error("{0}")]
    InvalidRequest(String),
    /// The broker did not answer in time.
    #[error("Kafka broker unavailable: {0}")]
    Unavailable(String),
    /// Any other client or broker error.
    #[error("Kafka error: {0}")]
    Kafka(#[from] KafkaError),
}

/// How to reach the cluster and how long to wait for it.
#[derive(Debug, Clone)]
pub struct KafkaAdminConfig {
    /// `bootstrap.servers` for librdkafka.
    pub bootstrap_servers: String,
    /// Cluster id reported when the broker does not send one in its metadata.
    pub fallback_cluster_id: String,
    /// Timeout of one metadata or admin request.
    pub request_timeout: Duration,
    /// How long to wait for a created or deleted topic to show in metadata.
    pub visibility_timeout: Duration,
    /// Extra librdkafka properties (security settings for a real cluster, for example).
    pub client_properties: Vec<(String, String)>,
}

impl KafkaAdminConfig {
    /// A configuration with the defaults used by the binary.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            fallback_cluster_id: "stage-host-local".to_owned(),
            request_timeout: Duration::from_secs(10),
            visibility_timeout: Duration::from_secs(10),
            client_properties: Vec::new(),
        }
    }
}

/// What the v3 API reports about one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Whether Kafka treats the topic as internal.
    pub is_internal: bool,
    /// Number of partitions.
    pub partitions_count: i32,
    /// Replicas of the first partition (Kafka keeps the factor uniform per topic).
    pub replication_factor: i32,
}

/// What the v3 API reports about one partition: who leads it, who holds it, who is in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition id.
    pub partition_id: i32,
    /// Broker id of the leader; `None` while the partition has none (librdkafka says -1).
    pub leader: Option<i32>,
    /// Broker ids of the replicas, in the broker's order.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
}

/// A topic to create; `None` fields take the broker's defaults.
#[derive(Debug, Clone, Default)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions, or the broker default.
    pub partitions_count: Option<i32>,
    /// Replication factor, or the broker default.
    pub replication_factor: Option<i32>,
    /// Topic-level configs such as `cleanup.policy`.
    pub configs: Vec<(String, String)>,
}

/// Whether [`KafkaAdmin::wait_for_topic`] waits for a topic to appear or to disappear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Wait until the topic is in metadata with all its partitions.
    Present,
    /// Wait until the topic is gone from metadata.
    Absent,
}

/// One admin connection to the cluster, shared by all requests.
pub struct KafkaAdmin {
    client: Arc<AdminClient<DefaultClientContext>>,
    config: KafkaAdminConfig,
    cluster_id: OnceLock<String>,
}

impl KafkaAdmin {
    /// Creates the admin client. It connects lazily, so this succeeds while the broker is down.
    pub fn new(config: KafkaAdminConfig) -> Result<Self, AdminError> {
        let mut client_config = ClientConfig::new();
        client_config
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("client.id", "kafka-rest-proxy");
        for (key, value) in &config.client_properties {
            client_config.set(key, value);
        }
        let client = client_config.create()?;
        Ok(Self {
            client: Arc::new(client),
            config,
            cluster_id: OnceLock::new(),
        })
    }

    /// The cluster's id: the broker's own if it reports one, else the configured fallback.
    ///
    /// Cached after the first success so that the id clients selected stays valid.
    pub async fn cluster_id(&self) -> Result<String, AdminError> {
        if let Some(id) = self.cluster_id.get() {
            return Ok(id.clone());
        }
        let client = Arc::clone(&self.client);
        let timeout = self.config.request_timeout;
        let from_broker = blocking(move || Ok(client.inner().fetch_cluster_id(timeout))).await?;
        let id = match from_broker.filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => {
                // No id: either the broker does not report one, or it is unreachable.
                // Only the first case may fall back to the configured id.
                self.metadata().await?;
                tracing::info!(
                    fallback = %self.config.fallback_cluster_id,
                    "broker reports no cluster id, using the configured one"
                );
                self.config.fallback_cluster_id.clone()
            }
        };
        Ok(self.cluster_id.get_or_init(|| id).clone())
    }

    /// The controller's broker id when the cluster has a single broker (then it must be the
    /// controller); librdkafka's metadata does not name the controller otherwise.
    pub async fn controller_id(&self) -> Result<Option<i32>, AdminError> {
        let metadata = self.metadata().await?;
        Ok(match metadata.brokers() {
            [only] => Some(only.id()),
            _ => None,
        })
    }

    /// All topics, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, AdminError> {
        let metadata = self.metadata().await?;
        let mut topics: Vec<TopicInfo> = metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none())
            .map(|topic| topic_info(topic.name(), topic))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// One topic, or [`AdminError::UnknownTopic`].
    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo, AdminError> {
        let metadata = self.metadata().await?;
        find_topic(&metadata, name).ok_or_else(|| AdminError::UnknownTopic(name.to_owned()))
    }

    /// One topic's partitions, by id, or [`AdminError::UnknownTopic`].
    pub async fn describe_partitions(&self, name: &str) -> Result<Vec<PartitionInfo>, AdminError> {
        let metadata = self.metadata().await?;
        let topic = metadata
            .topics()
            .iter()
            .find(|topic| topic.name() == name && topic.error().is_none())
            .ok_or_else(|| AdminError::UnknownTopic(name.to_owned()))?;
        let mut partitions: Vec<PartitionInfo> = topic
            .partitions()
            .iter()
            .map(|p| PartitionInfo {
                partition_id: p.id(),
                leader: (p.leader() >= 0).then_some(p.leader()),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition_id);
        Ok(partitions)
    }

    /// Creates a topic; with `validate_only` the broker only checks the request.
    pub async fn create_topic(
        &self,
        spec: &TopicSpec,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let mut new_topic = NewTopic::new(
            &spec.name,
            spec.partitions_count.unwrap_or(-1),
            TopicReplication::Fixed(spec.replication_factor.unwrap_or(-1)),
        );
        for (key, value) in &spec.configs {
            new_topic = new_topic.set(key, value);
        }
        let options = self.admin_options().validate_only(validate_only);
        let results = self.client.create_topics([&new_topic], &options).await?;
        check_topic_results(results)
    }

    /// Deletes a topic, or fails with [`AdminError::UnknownTopic`].
    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let results = self
            .client
            .delete_topics(&[name], &self.admin_options())
            .await?;
        check_topic_results(results)
    }

    /// Polls metadata until the topic is present (returned) or absent, or the configured
    /// visibility timeout passes (then `Ok(None)`: the change is accepted but not yet visible).
    pub async fn wait_for_topic(
        &self,
        name: &str,
        visibility: Visibility,
    ) -> Result<Option<TopicInfo>, AdminError> {
        let deadline = Instant::now() + self.config.visibility_timeout;
        loop {
            let metadata = self.metadata().await?;
            let found = find_topic(&metadata, name);
            match (visibility, found) {
                (Visibility::Present, Some(info)) if info.partitions_count > 0 => {
                    return Ok(Some(info))
                }
                (Visibility::Absent, None) => return Ok(None),
                _ if Instant::now() >= deadline => {
                    tracing::warn!(
                        topic = name,
                        ?visibility,
                        "topic change not yet visible in metadata"
                    );
                    return Ok(None);
                }
                _ => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }

    /// Metadata for all topics, fetched off the async runtime (librdkafka blocks).
    async fn metadata(&self) -> Result<Metadata, AdminError> {
        let client = Arc::clone(&self.client);
        let timeout = self.config.request_timeout;
        blocking(move || {
            client
                .inner()
                .fetch_metadata(None, timeout)
                .map_err(classify_kafka_error)
        })
        .await
    }

    fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout))
    }
}

/// Runs a blocking librdkafka call on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, AdminError>
where
    F: FnOnce() -> Result<T, AdminError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| AdminError::Unavailable(format!("metadata task failed: {err}")))?
}

fn find_topic(metadata: &Metadata, name: &str) -> Option<TopicInfo> {
    metadata
        .topics()
        .iter()
        .find(|topic| topic.name() == name && topic.error().is_none())
        .map(|topic| topic_info(name, topic))
}

fn topic_info(name: &str, topic: &rdkafka::metadata::MetadataTopic) -> TopicInfo {
    let partitions = topic.partitions();
    TopicInfo {
        name: name.to_owned(),
        is_internal: INTERNAL_TOPICS.contains(&name),
        partitions_count: partitions.len() as i32,
        replication_factor: partitions
            .first()
            .map_or(0, |partition| partition.replicas().len() as i32),
    }
}

/// Turns the per-topic results of CreateTopics/DeleteTopics into one outcome.
fn check_topic_results(results: Vec<rdkafka::admin::TopicResult>) -> Result<(), AdminError> {
    for result in results {
        if let Err((topic, code)) = result {
            return Err(classify_topic_error(topic, code));
        }
    }
    Ok(())
}

fn classify_topic_error(topic: String, code: RDKafkaErrorCode) -> AdminError {
    use RDKafkaErrorCode as Code;
    match code {
        Code::TopicAlreadyExists => AdminError::TopicExists(topic),
        Code::UnknownTopicOrPartition | Code::UnknownTopic => AdminError::UnknownTopic(topic),
        Code::InvalidPartitions
        | Code::InvalidReplicationFactor
        | Code::InvalidReplicaAssignment
        | Code::InvalidTopic
        | Code::InvalidConfig
        | Code::InvalidRequest
        | Code::PolicyViolation => AdminError::InvalidRequest(format!("{code} (topic '{topic}')")),
        Code::OperationTimedOut | Code::RequestTimedOut | Code::AllBrokersDown => {
            AdminError::Unavailable(code.to_string())
        }
        other => AdminError::Kafka(KafkaError::AdminOp(other)),
    }
}

fn classify_kafka_error(err: KafkaError) -> AdminError {
    match err.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure,
        ) => AdminError::Unavailable(err.to_string()),
        _ => AdminError::Kafka(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_errors_are_classified() {
        assert!(matches!(
            classify_topic_error("t".into(), RDKafkaErrorCode::TopicAlreadyExists),
            AdminError::TopicExists(t) if t == "t"
        ));
        assert!(matches!(
            classify_topic_error("t".into(), RDKafkaErrorCode::UnknownTopicOrPartition),
            AdminError::UnknownTopic(_)
        ));
        assert!(matches!(
            classify_topic_error("t".into(), RDKafkaErrorCode::InvalidReplicationFactor),
            AdminError::InvalidRequest(_)
        ));
    }
}
