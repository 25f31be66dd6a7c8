//! `stage-host topic list|describe|create|delete|clusters`.
//!
//! Without `--rest-proxy-url` the commands speak the Kafka Admin API (metadata, CreateTopics,
//! DeleteTopics); with it they go through the REST Proxy v3, as the Python `ClusterAdmin` did,
//! including listing the proxy's clusters and choosing one with `--cluster`.

use crate::error::HostError;
use crate::settings::Connection;
use clap::{Args, Subcommand};
use confluent::{NewTopic, RestProxy, TopicAdmin, TopicError, TopicInfo};

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
            let info = backend(conn)?
                .describe(topic)?
                .ok_or_else(|| TopicError::Refused(format!("topic {topic} does not exist")))?;
            if conn.json {
                // One object, the same from either back end.
                println!(
                    "{}",
                    serde_json::to_string(&info).expect("topic info serializes")
                );
                return Ok(());
            }
            print_topics(std::slice::from_ref(&info), false);
            if !info.partition_detail.is_empty() {
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
            let created = backend(conn)?.create(&NewTopic {
                name: topic,
                partitions: *partitions,
                replication_factor: *replication_factor,
                config: &[],
            })?;
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
            let ids = RestProxy::cluster_ids(url, conn.connection.connect_timeout())?;
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
        println!(
            "{}",
            serde_json::to_string(topics).expect("topic info serializes")
        );
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

fn backend(conn: &TopicConnection) -> Result<Box<dyn TopicAdmin>, TopicError> {
    conn.connection.topic_admin(conn.cluster.as_deref())
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
