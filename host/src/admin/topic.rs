//! `stage-host topic list|describe|create|delete|clusters`.
//!
//! Without `--rest-proxy-url` the commands speak the Kafka Admin API (metadata, CreateTopics,
//! DeleteTopics); with it they go through the REST Proxy v3, as the Python `ClusterAdmin` did,
//! including listing the proxy's clusters and choosing one with `--cluster`.

use super::rest_proxy::RestProxy;
use crate::error::HostError;
use crate::settings::Connection;
use crate::topics::TopicError;
use clap::{Args, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

/// Connection options shared by every topic command.
#[derive(Debug, Args)]
pub struct TopicConnection {
    /// Cluster id to use through the REST Proxy (default: its first cluster).
    #[arg(long, requires = "rest_proxy_url")]
    pub cluster: Option<String>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Cluster connection.
    #[command(flatten)]
    pub connection: Connection,
}

/// What to do with topics.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// List the topics, with partition counts and replication factors.
    List {
        /// Include internal topics (names starting with `_` or `__`).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        conn: TopicConnection,
    },
    /// Show one topic: partitions, leaders, replicas.
    Describe {
        /// Topic name.
        topic: String,
        #[command(flatten)]
        conn: TopicConnection,
    },
    /// Create a topic.
    Create {
        /// Topic name.
        topic: String,
        /// Number of partitions.
        #[arg(long, default_value = "1", value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
        /// Replication factor.
        #[arg(long, default_value = "1", value_parser = clap::value_parser!(i16).range(1..))]
        replication_factor: i16,
        /// Succeed when the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        conn: TopicConnection,
    },
    /// Delete a topic and its records.
    Delete {
        /// Topic name.
        topic: String,
        /// Succeed when the topic does not exist.
        #[arg(long)]
        if_exists: bool,
        #[command(flatten)]
        conn: TopicConnection,
    },
    /// List the clusters a REST Proxy serves (the Python `ClusterAdmin.get_clusters`).
    Clusters {
        #[command(flatten)]
        conn: TopicConnection,
    },
}

/// One topic as the commands print it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub partitions: usize,
    /// Replicas per partition (of the first partition).
    pub replication_factor: usize,
    /// Per-partition detail (`describe` only through the Admin API).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_detail: Vec<PartitionInfo>,
}

/// One partition of a described topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition id.
    pub id: i32,
    /// Leader broker id.
    pub leader: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
}

/// Runs a topic command, printing its result on stdout.
pub fn run(command: &TopicCommand) -> Result<(), HostError> {
    match command {
        TopicCommand::List { all, conn } => {
            let mut topics = backend(conn)?.list()?;
            if !all {
                topics.retain(|t| !t.name.starts_with('_'));
            }
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            print_topics(&topics, conn.json);
        }
        TopicCommand::Describe { topic, conn } => {
            let info = backend(conn)?.describe(topic)?;
            print_topics(std::slice::from_ref(&info), conn.json);
            if !conn.json && !info.partition_detail.is_empty() {
                println!("{:<10} {:<7} {:<12} ISR", "PARTITION", "LEADER", "REPLICAS");
                for p in &info.partition_detail {
                    println!(
                        "{:<10} {:<7} {:<12} {}",
                        p.id,
                        p.leader,
                        join(&p.replicas),
                        join(&p.isr)
                    );
                }
            }
        }
        TopicCommand::Create {
            topic,
            partitions,
            replication_factor,
            if_not_exists,
            conn,
        } => {
            validate_name(topic)?;
            let created = backend(conn)?.create(topic, *partitions, *replication_factor)?;
            match (created, if_not_exists) {
                (true, _) => report(conn.json, "created", topic),
                (false, true) => report(conn.json, "exists", topic),
                (false, false) => {
                    return Err(TopicError::Refused(format!(
                        "topic {topic} already exists (pass --if-not-exists to accept that)"
                    ))
                    .into())
                }
            }
        }
        TopicCommand::Delete {
            topic,
            if_exists,
            conn,
        } => {
            let deleted = backend(conn)?.delete(topic)?;
            match (deleted, if_exists) {
                (true, _) => report(conn.json, "deleted", topic),
                (false, true) => report(conn.json, "absent", topic),
                (false, false) => {
                    return Err(TopicError::Refused(format!(
                        "topic {topic} does not exist (pass --if-exists to accept that)"
                    ))
                    .into())
                }
            }
        }
        TopicCommand::Clusters { conn } => {
            let Some(url) = &conn.connection.rest_proxy_url else {
                return Err(HostError::Config(
                    "`topic clusters` lists a REST Proxy's clusters: pass --rest-proxy-url".into(),
                ));
            };
            let ids = RestProxy::cluster_ids(url)?;
            if conn.json {
                println!("{}", serde_json::json!(ids));
            } else {
                ids.iter().for_each(|id| println!("{id}"));
            }
        }
    }
    Ok(())
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn report(json: bool, status: &str, topic: &str) {
    if json {
        println!("{}", serde_json::json!({"topic": topic, "status": status}));
    } else {
        println!("{status} {topic}");
    }
}

fn print_topics(topics: &[TopicInfo], json: bool) {
    if json {
        let text = if topics.len() == 1 && !topics[0].partition_detail.is_empty() {
            serde_json::to_string(&topics[0])
        } else {
            serde_json::to_string(topics)
        };
        println!("{}", text.expect("topic info serializes"));
        return;
    }
    println!("{:<40} {:>10} {:>12}", "TOPIC", "PARTITIONS", "REPLICATION");
    for t in topics {
        println!(
            "{:<40} {:>10} {:>12}",
            t.name, t.partitions, t.replication_factor
        );
    }
}

/// Kafka's own rule for topic names (see [`crate::validate::topic_name`]), as an argument
/// error (exit 2) rather than whatever the broker answers.
pub fn validate_name(topic: &str) -> Result<(), HostError> {
    crate::validate::topic_name(topic).map_err(HostError::Config)
}

/// The operations both back ends offer.
trait TopicAdmin {
    fn list(&self) -> Result<Vec<TopicInfo>, TopicError>;
    fn describe(&self, topic: &str) -> Result<TopicInfo, TopicError>;
    /// `Ok(false)`: it already existed.
    fn create(&self, topic: &str, partitions: i32, replication: i16) -> Result<bool, TopicError>;
    /// `Ok(false)`: it did not exist.
    fn delete(&self, topic: &str) -> Result<bool, TopicError>;
}

fn backend(conn: &TopicConnection) -> Result<Box<dyn TopicAdmin>, TopicError> {
    Ok(match &conn.connection.rest_proxy_url {
        Some(url) => Box::new(RestProxy::connect(url, conn.cluster.as_deref())?),
        None => Box::new(KafkaAdmin(conn.connection.clone())),
    })
}

impl TopicAdmin for RestProxy {
    fn list(&self) -> Result<Vec<TopicInfo>, TopicError> {
        RestProxy::list(self)
    }

    fn describe(&self, topic: &str) -> Result<TopicInfo, TopicError> {
        RestProxy::describe(self, topic)?
            .ok_or_else(|| TopicError::Refused(format!("topic {topic} does not exist")))
    }

    fn create(&self, topic: &str, partitions: i32, replication: i16) -> Result<bool, TopicError> {
        RestProxy::create(self, topic, partitions, replication)
    }

    fn delete(&self, topic: &str) -> Result<bool, TopicError> {
        RestProxy::delete(self, topic)
    }
}

/// The Kafka Admin API back end.
struct KafkaAdmin(Connection);

impl KafkaAdmin {
    fn metadata(&self, topic: Option<&str>) -> Result<Vec<TopicInfo>, TopicError> {
        // A metadata request must never create the topic it asks about.
        let consumer: BaseConsumer = self
            .0
            .client_config(&[("allow.auto.create.topics", "false")])
            .create()
            .map_err(|e| TopicError::Refused(format!("invalid Kafka client settings: {e}")))?;
        let metadata = consumer
            .fetch_metadata(topic, self.0.connect_timeout())
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

    fn unreachable(&self, e: impl std::fmt::Display) -> TopicError {
        TopicError::Unreachable {
            servers: self.0.bootstrap_servers.clone(),
            message: e.to_string(),
        }
    }

    fn admin(&self) -> Result<(AdminClient<DefaultClientContext>, AdminOptions), TopicError> {
        let admin = self
            .0
            .client_config(&[])
            .create()
            .map_err(|e| TopicError::Refused(format!("invalid Kafka client settings: {e}")))?;
        let options = AdminOptions::new().operation_timeout(Some(self.0.connect_timeout()));
        Ok((admin, options))
    }

    fn exists(&self, topic: &str) -> Result<bool, TopicError> {
        Ok(self.metadata(Some(topic))?.iter().any(|t| t.name == topic))
    }
}

fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, TopicError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TopicError::Refused(format!("cannot start an async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

impl TopicAdmin for KafkaAdmin {
    fn list(&self) -> Result<Vec<TopicInfo>, TopicError> {
        let mut topics = self.metadata(None)?;
        topics.iter_mut().for_each(|t| t.partition_detail.clear());
        Ok(topics)
    }

    fn describe(&self, topic: &str) -> Result<TopicInfo, TopicError> {
        self.metadata(Some(topic))?
            .into_iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| TopicError::Refused(format!("topic {topic} does not exist")))
    }

    fn create(&self, topic: &str, partitions: i32, replication: i16) -> Result<bool, TopicError> {
        if self.exists(topic)? {
            return Ok(false);
        }
        let (admin, options) = self.admin()?;
        let new = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(i32::from(replication)),
        );
        let results =
            block_on(admin.create_topics([&new], &options))?.map_err(|e| self.unreachable(e))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => return Ok(false),
                Err((name, code)) => {
                    return Err(TopicError::Refused(format!(
                        "creating topic {name} failed: {code}"
                    )))
                }
            }
        }
        Ok(true)
    }

    fn delete(&self, topic: &str) -> Result<bool, TopicError> {
        if !self.exists(topic)? {
            return Ok(false);
        }
        let (admin, options) = self.admin()?;
        let results =
            block_on(admin.delete_topics(&[topic], &options))?.map_err(|e| self.unreachable(e))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    return Ok(false)
                }
                Err((name, code)) => {
                    return Err(TopicError::Refused(format!(
                        "deleting topic {name} failed: {code}"
                    )))
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafkas_rule() {
        assert!(validate_name("posts.v1_a-b").is_ok());
        for bad in ["", ".", "..", "has space", "slash/name", &"x".repeat(250)] {
            let err = validate_name(bad).unwrap_err();
            assert_eq!(
                err.exit_code(),
                crate::error::exit_code::BAD_CONFIG,
                "{bad}"
            );
        }
    }
}
