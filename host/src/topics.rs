//! Topic existence and creation, through the Kafka Admin API or, when a REST Proxy URL is
//! given, its v3 API (the only way the Python library had).

use crate::client_events::EventsContext;
use crate::settings::Connection;
use crate::shutdown::Shutdown;
use plugin_host::TopicSpec;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer};
use std::time::{Duration, Instant};

/// A topic operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The broker did not answer.
    #[error("cannot reach Kafka at {servers}: {message}")]
    Unreachable {
        /// Bootstrap servers.
        servers: String,
        /// What failed.
        message: String,
    },
    /// The broker or REST Proxy refused.
    #[error("{0}")]
    Refused(String),
    /// A stop signal arrived while waiting for the broker or a topic: nothing was consumed.
    #[error("stopped by a signal during start-up, before anything was consumed")]
    Stopped,
    /// Waited for a topic that did not appear.
    #[error("input topic {topic} does not exist (waited {waited_secs} s); start the stage that produces it, or create it")]
    Missing {
        /// The topic.
        topic: String,
        /// How long we waited.
        waited_secs: u64,
    },
}

/// Checks the broker answers a metadata request and returns whether `topic` exists.
///
/// Asks in one-second slices until the connect timeout, so that a failure no retry heals (a
/// wrong password, a CA that did not sign the broker's certificate) ends the wait at once,
/// and an unreachable broker is reported with what librdkafka saw, not a generic timeout.
pub fn topic_exists(conn: &Connection, topic: &str, stop: &Shutdown) -> Result<bool, TopicError> {
    let events = EventsContext::default();
    // A metadata request for a missing topic must not create it with the broker's defaults.
    let producer: BaseProducer<EventsContext> = conn
        .client_config(&[("allow.auto.create.topics", "false")])
        .create_with_context(events.clone())
        .map_err(|e| TopicError::Refused(format!("invalid Kafka client settings: {e}")))?;
    let deadline = Instant::now() + conn.connect_timeout();
    let unreachable = |message: String| TopicError::Unreachable {
        servers: conn.bootstrap_servers.clone(),
        message,
    };
    let metadata = loop {
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        let fetched = producer.client().fetch_metadata(Some(topic), slice);
        // Serves the error callback: librdkafka reports why it cannot connect only there.
        producer.poll(Duration::ZERO);
        match fetched {
            Ok(metadata) => break metadata,
            Err(e) => {
                if let Some(refused) = events.0.refusal() {
                    return Err(unreachable(refused.message));
                }
                if stop.requested() {
                    return Err(TopicError::Stopped);
                }
                if Instant::now() >= deadline {
                    let seen = events.0.last().map(|l| l.message).unwrap_or_default();
                    return Err(unreachable(if seen.is_empty() {
                        e.to_string()
                    } else {
                        format!("{e}; last client error: {seen}")
                    }));
                }
            }
        }
    };
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}

/// Creates the topic if it does not exist yet.
pub fn ensure_topic(
    conn: &Connection,
    spec: &TopicSpec,
    stop: &Shutdown,
) -> Result<bool, TopicError> {
    ensure_topic_with_config(conn, spec, &[], stop)
}

/// Creates the topic with the topic settings `config` (e.g. `cleanup.policy=compact`) if it
/// does not exist yet. An existing topic is left as it is.
pub fn ensure_topic_with_config(
    conn: &Connection,
    spec: &TopicSpec,
    config: &[(&str, &str)],
    stop: &Shutdown,
) -> Result<bool, TopicError> {
    if topic_exists(conn, &spec.name, stop)? {
        return Ok(false);
    }
    match &conn.rest_proxy_url {
        Some(url) => rest::create_topic(url, spec, config)?,
        None => create_with_admin_api(conn, spec, config)?,
    }
    Ok(true)
}

fn create_with_admin_api(
    conn: &Connection,
    spec: &TopicSpec,
    config: &[(&str, &str)],
) -> Result<(), TopicError> {
    let admin: AdminClient<EventsContext> = conn
        .client_config(&[])
        .create_with_context(EventsContext::default())
        .map_err(|e| TopicError::Refused(format!("invalid Kafka client settings: {e}")))?;
    let mut topic = NewTopic::new(
        &spec.name,
        spec.partitions,
        TopicReplication::Fixed(i32::from(spec.replication_factor)),
    );
    for (key, value) in config {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(conn.connect_timeout()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TopicError::Refused(e.to_string()))?;
    let results = runtime
        .block_on(admin.create_topics([&topic], &options))
        .map_err(|e| TopicError::Unreachable {
            servers: conn.bootstrap_servers.clone(),
            message: e.to_string(),
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(TopicError::Refused(format!(
                    "creating topic {name} failed: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// Whether `topic`'s `cleanup.policy` includes `compact`: offsets of a compacted topic have
/// gaps by design. A broker that does not answer (or an ACL that hides the configuration)
/// counts as not compacted, with a note in the log.
pub fn is_compacted(conn: &Connection, topic: &str) -> bool {
    let described = (|| -> Result<bool, String> {
        let admin: AdminClient<EventsContext> = conn
            .client_config(&[])
            .create_with_context(EventsContext::default())
            .map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let options = AdminOptions::new().request_timeout(Some(conn.connect_timeout()));
        let results = runtime
            .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
            .map_err(|e| e.to_string())?;
        let resource = results
            .into_iter()
            .next()
            .ok_or("no answer")?
            .map_err(|e| e.to_string())?;
        Ok(resource
            .get("cleanup.policy")
            .and_then(|entry| entry.value.as_deref())
            .is_some_and(|policy| policy.contains("compact")))
    })();
    described.unwrap_or_else(|e| {
        tracing::info!(topic, error = %e, "cannot read the topic's cleanup.policy; assuming it is not compacted");
        false
    })
}

/// Waits until `topic` exists, polling, for at most `timeout`.
pub fn wait_for_topic(
    conn: &Connection,
    topic: &str,
    timeout: Duration,
    stop: &Shutdown,
) -> Result<(), TopicError> {
    let start = Instant::now();
    let mut logged = false;
    loop {
        if topic_exists(conn, topic, stop)? {
            return Ok(());
        }
        if stop.requested() {
            return Err(TopicError::Stopped);
        }
        if start.elapsed() >= timeout {
            return Err(TopicError::Missing {
                topic: topic.to_string(),
                waited_secs: start.elapsed().as_secs(),
            });
        }
        if !logged {
            tracing::info!(topic, "waiting for the input topic to be created");
            logged = true;
        }
        stop.sleep(Duration::from_millis(500));
    }
}

/// The REST Proxy v3 topic API.
pub mod rest {
    use super::TopicError;
    use plugin_host::TopicSpec;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    struct ClusterList {
        data: Vec<Cluster>,
    }

    #[derive(Deserialize)]
    struct Cluster {
        cluster_id: String,
    }

    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .expect("a reqwest client with a timeout builds")
    }

    /// A request that got no answer is an unreachable proxy (exit 4); an answer that refuses
    /// is the cluster's refusal (exit 5).
    fn unreachable(url: &str, e: reqwest::Error) -> TopicError {
        if e.is_connect() || e.is_timeout() || e.is_request() {
            TopicError::Unreachable {
                servers: format!("Kafka REST Proxy {url}"),
                message: crate::error::one_line(&e),
            }
        } else {
            TopicError::Refused(format!("Kafka REST Proxy at {url} failed: {e}"))
        }
    }

    /// The ids of the clusters the proxy serves.
    pub fn cluster_ids(url: &str) -> Result<Vec<String>, TopicError> {
        let base = url.trim_end_matches('/');
        let list: ClusterList = client()
            .get(format!("{base}/v3/clusters"))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .map_err(|e| unreachable(url, e))?;
        Ok(list.data.into_iter().map(|c| c.cluster_id).collect())
    }

    /// Creates a topic in the proxy's first cluster; an existing topic is not an error.
    pub fn create_topic(
        url: &str,
        spec: &TopicSpec,
        config: &[(&str, &str)],
    ) -> Result<(), TopicError> {
        let base = url.trim_end_matches('/');
        let cluster = cluster_ids(url)?.into_iter().next().ok_or_else(|| {
            TopicError::Refused(format!("Kafka REST Proxy at {url} lists no cluster"))
        })?;
        let response = client()
            .post(format!("{base}/v3/clusters/{cluster}/topics"))
            .json(&json!({
                "topic_name": spec.name,
                "partitions_count": spec.partitions,
                "replication_factor": spec.replication_factor,
                "configs": config
                    .iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect::<Vec<_>>(),
            }))
            .send()
            .map_err(|e| unreachable(url, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: serde_json::Value = response.json().unwrap_or_default();
        // 40002: "Topic already exists" (a concurrent creator won the race).
        if body["error_code"] == 40002 {
            return Ok(());
        }
        Err(TopicError::Refused(format!(
            "Kafka REST Proxy refused to create topic {}: {} {}",
            spec.name, status, body["message"]
        )))
    }
}
