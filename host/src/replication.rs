//! Whether a stage can write to the topics it uses. A topic with fewer replicas than its
//! `min.insync.replicas` refuses every write with `acks=all` (`NOT_ENOUGH_REPLICAS`), and
//! librdkafka only retries it until the delivery timeout: a stage would start, consume and
//! then stall on its first batch. That is what a plugin's replication factor of 1 meets on a
//! cluster whose brokers default to `min.insync.replicas=2`, so start-up checks it before it
//! creates anything, and says which flag fixes it.

use crate::error::HostError;
use crate::settings::Connection;
use crate::shutdown::Shutdown;
use crate::topics;
use confluent::{TopicAdmin, TopicError};
use plugin_host::TopicSpec;

const MIN_ISR: &str = "min.insync.replicas";

/// Checks, before `topic` (the stage's `role`: output, dead-letter or checkpoint topic) is
/// created, that writes with the producer's `acks` can succeed on it: refused, as a
/// configuration error, when it has (or would be created with) fewer replicas than its
/// `min.insync.replicas` (the topic's own, or for a topic still to be created the brokers').
/// `requested` is the operator's `--replication-factor`: a topic that already exists with
/// another one keeps it, which is logged as a warning. When the broker does not tell (an ACL
/// hides the settings) the check is skipped with a note in the log: the stage then finds out
/// on its first write.
pub fn check_writable(
    conn: &Connection,
    role: &str,
    topic: &TopicSpec,
    requested: Option<i16>,
    stop: &Shutdown,
) -> Result<(), HostError> {
    if !acks_all(conn) {
        return Ok(());
    }
    // Waits for the broker as creating the topic would (a stop signal, an unreachable broker).
    let exists = topics::topic_exists(conn, &topic.name, stop)?;
    let admin = conn.kafka_admin();
    let known = if exists {
        replicas_of(&admin, &topic.name).and_then(|replicas| {
            let min_isr = admin.topic_setting(&topic.name, MIN_ISR)?;
            Ok((replicas, min_isr))
        })
    } else {
        admin
            .broker_setting(MIN_ISR)
            .map(|min_isr| (i64::from(topic.replication_factor), min_isr))
    };
    let (replicas, min_isr) = match known {
        Ok((replicas, Some(min_isr))) => match min_isr.trim().parse::<i64>() {
            Ok(min_isr) => (replicas, min_isr),
            Err(_) => return skipped(topic, &format!("{MIN_ISR} is {min_isr:?}")),
        },
        Ok((_, None)) => return skipped(topic, &format!("the broker names no {MIN_ISR}")),
        Err(e) => return skipped(topic, &e.to_string()),
    };
    if let Some(requested) = requested.filter(|r| exists && i64::from(*r) != replicas) {
        tracing::warn!(
            topic = %topic.name,
            replicas,
            requested,
            "the {role} exists with {replicas} replicas: --replication-factor {requested} applies only to topics the stage creates"
        );
    }
    match refusal(role, &topic.name, replicas, min_isr) {
        Some(message) => Err(HostError::Config(message)),
        None => Ok(()),
    }
}

/// Whether the producer waits for every in-sync replica (`acks=all`, the host's default;
/// `-X acks=1` or `-X request.required.acks=1` does not).
fn acks_all(conn: &Connection) -> bool {
    conn.properties_for(crate::kafka_properties::Clients::Producers)
        .filter(|p| p.key == "acks" || p.key == "request.required.acks")
        .last()
        .is_none_or(|p| matches!(p.value.trim(), "all" | "-1"))
}

/// The replica count of an existing topic.
fn replicas_of(admin: &confluent::KafkaAdmin, topic: &str) -> Result<i64, TopicError> {
    admin
        .describe(topic)?
        .map(|info| info.replication_factor as i64)
        .ok_or_else(|| TopicError::Refused(format!("topic {topic} is not in the metadata")))
}

fn skipped(topic: &TopicSpec, why: &str) -> Result<(), HostError> {
    tracing::info!(topic = %topic.name, reason = why, "cannot read the topic's replicas and min.insync.replicas; not checking that writes with acks=all can succeed");
    Ok(())
}

/// The one-line refusal for a topic with fewer replicas than its `min.insync.replicas`.
fn refusal(role: &str, topic: &str, replicas: i64, min_isr: i64) -> Option<String> {
    (replicas < min_isr).then(|| {
        format!(
            "the {role} {topic} has {replicas} replica{} but min.insync.replicas={min_isr}, so no write with acks=all can succeed: give --replication-factor {min_isr} or more (in a pipeline file: replication_factor), or lower the topic's min.insync.replicas",
            if replicas == 1 { "" } else { "s" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        connection: Connection,
    }

    fn connection(args: &[&str]) -> Connection {
        Args::parse_from(std::iter::once("test").chain(args.iter().copied())).connection
    }

    #[test]
    fn fewer_replicas_than_min_isr_is_refused_naming_the_flag() {
        assert_eq!(refusal("output topic", "t", 3, 2), None);
        assert_eq!(refusal("output topic", "t", 2, 2), None);
        let refused = refusal("output topic", "posts", 1, 2).expect("refused");
        assert!(
            refused.starts_with("the output topic posts has 1 replica but min.insync.replicas=2"),
            "{refused}"
        );
        assert!(
            refused.contains("--replication-factor 2 or more"),
            "{refused}"
        );
        assert!(refusal("dead-letter topic", "d", 2, 3)
            .expect("refused")
            .contains("has 2 replicas"));
    }

    #[test]
    fn only_acks_all_needs_the_in_sync_replicas() {
        assert!(acks_all(&connection(&[])), "the host's default is acks=all");
        assert!(acks_all(&connection(&["-X", "acks=-1"])));
        assert!(!acks_all(&connection(&["-X", "acks=1"])));
        assert!(!acks_all(&connection(&["-X", "request.required.acks=0"])));
        assert!(!acks_all(&connection(&["-X", "producer.acks=1"])));
        assert!(
            acks_all(&connection(&["-X", "acks=1", "-X", "acks=all"])),
            "the last setting wins, as in the client config"
        );
    }
}
