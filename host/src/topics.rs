//! Topics at start-up: wait for the broker, create the stage's topics if they are missing,
//! wait for its input. The operations go through the one topic administration of
//! [`confluent::topics`] (the Kafka Admin API, or the REST Proxy v3 when its URL is given);
//! what is here is the waiting, which a stop signal interrupts.

use crate::client_events::EventsContext;
use crate::error::HostError;
use crate::settings::Connection;
use crate::shutdown::Shutdown;
use confluent::{NewTopic, TopicError};
use plugin_host::TopicSpec;
use rdkafka::producer::{BaseProducer, Producer};
use std::time::{Duration, Instant};

/// Checks the broker answers a metadata request and returns whether `topic` exists.
///
/// Asks in one-second slices until the connect timeout, so that a failure no retry heals (a
/// wrong password, a CA that did not sign the broker's certificate) ends the wait at once,
/// and an unreachable broker is reported with what librdkafka saw, not a generic timeout.
pub fn topic_exists(conn: &Connection, topic: &str, stop: &Shutdown) -> Result<bool, HostError> {
    let events = EventsContext::default();
    // A metadata request for a missing topic must not create it with the broker's defaults.
    let producer: BaseProducer<EventsContext> = conn
        .client_config(&[("allow.auto.create.topics", "false")])
        .create_with_context(events.clone())
        .map_err(|e| HostError::Config(format!("invalid Kafka client settings: {e}")))?;
    let deadline = Instant::now() + conn.connect_timeout();
    let unreachable = |message: String| {
        HostError::Topic(TopicError::Unreachable {
            servers: format!("Kafka at {}", conn.bootstrap_servers),
            message,
        })
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
                    return Err(HostError::Stopped);
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
) -> Result<bool, HostError> {
    ensure_topic_with_config(conn, spec, &[], stop)
}

/// Creates the topic with the topic settings `config` (e.g. `cleanup.policy=compact`) if it
/// does not exist yet. An existing topic is left as it is.
pub fn ensure_topic_with_config(
    conn: &Connection,
    spec: &TopicSpec,
    config: &[(&str, &str)],
    stop: &Shutdown,
) -> Result<bool, HostError> {
    if topic_exists(conn, &spec.name, stop)? {
        return Ok(false);
    }
    let created = conn.topic_admin(None)?.create(&NewTopic {
        name: &spec.name,
        partitions: spec.partitions,
        replication_factor: spec.replication_factor,
        config,
    })?;
    Ok(created)
}

/// Whether `topic`'s `cleanup.policy` includes `compact`: offsets of a compacted topic have
/// gaps by design. A broker that does not answer (or an ACL that hides the configuration)
/// counts as not compacted, with a note in the log.
pub fn is_compacted(conn: &Connection, topic: &str) -> bool {
    conn.kafka_admin().is_compacted(topic).unwrap_or_else(|e| {
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
) -> Result<(), HostError> {
    let start = Instant::now();
    let mut logged = false;
    loop {
        if topic_exists(conn, topic, stop)? {
            return Ok(());
        }
        if stop.requested() {
            return Err(HostError::Stopped);
        }
        if start.elapsed() >= timeout {
            return Err(HostError::MissingInput {
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
