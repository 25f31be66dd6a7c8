//! Every argument and configuration value of a stage run, checked in one place before any
//! connection is made: a bad value is a configuration error (exit 2) with one line naming it,
//! never a failure half-way through start-up after topics were created or schemas registered.

use crate::cli::RunArgs;
use crate::settings::{Connection, CONSUMER_DEFAULTS, PRODUCER_DEFAULTS};

/// Longest `--batch-wait-ms`: a batch that waits longer for more records than this only delays
/// its records (and would have held up a stop).
pub const MAX_BATCH_WAIT_MS: u64 = 600_000;
/// The longest `--transaction-ms`.
pub const MAX_TRANSACTION_MS: u64 = 60_000;
/// Most records per plugin call.
pub const MAX_BATCH_SIZE: usize = 1_000_000;

/// Checks `args` and its connection settings. Topic names the plugin declares are checked
/// once the plugin is loaded, with [`topic_name`].
pub fn run_args(args: &RunArgs) -> Result<(), String> {
    connection(&args.connection)?;
    if args.batch_size == 0 || args.batch_size > MAX_BATCH_SIZE {
        return Err(format!(
            "--batch-size must be between 1 and {MAX_BATCH_SIZE}, not {}",
            args.batch_size
        ));
    }
    if args.batch_wait_ms > MAX_BATCH_WAIT_MS {
        return Err(format!(
            "--batch-wait-ms must be at most {MAX_BATCH_WAIT_MS} (10 minutes), not {}",
            args.batch_wait_ms
        ));
    }
    if args.transaction_ms > MAX_TRANSACTION_MS {
        return Err(format!(
            "--transaction-ms must be at most {MAX_TRANSACTION_MS} (a minute, well inside the transaction timeout), not {}",
            args.transaction_ms
        ));
    }
    for (flag, secs) in [
        ("--batch-timeout-secs", args.batch_timeout_secs),
        ("--flush-timeout-secs", args.flush_timeout_secs),
    ] {
        if secs == 0 {
            return Err(format!("{flag} must be at least 1"));
        }
    }
    if args.failure_window == 0 {
        return Err("--failure-window must be at least 1 record".into());
    }
    let ratio = args.max_failure_ratio;
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(format!(
            "--max-failure-ratio must be a number above 0 and at most 1, not {ratio}"
        ));
    }
    for (flag, topic) in [
        ("--input-topic", &args.input_topic),
        ("--output-topic", &args.output_topic),
        ("--dead-letter-topic", &args.dead_letter_topic),
    ] {
        if let Some(topic) = topic {
            topic_name(topic).map_err(|e| format!("{flag}: {e}"))?;
        }
    }
    topic_name(&args.checkpoint_topic).map_err(|e| format!("--checkpoint-topic: {e}"))?;
    for (flag, value) in [
        ("--group-id", &args.group_id),
        ("--transactional-id", &args.transactional_id),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(format!("{flag} must not be empty"));
        }
    }
    if let Some(pin) = &args.plugin_sha256 {
        sha256_pin(pin)?;
    }
    if let Some(fd) = args.status_fd {
        status_fd(fd)?;
    }
    Ok(())
}

/// Checks the connection settings every command shares: URLs, credentials, timeouts, and the
/// `-X` properties (none the host owns, a `consumer.`/`producer.` prefix only where the
/// property is of that kind, then librdkafka's own check of names and values for the consumer
/// and the producer, without creating a client).
pub fn connection(conn: &Connection) -> Result<(), String> {
    http_url("--schema-registry-url", &conn.schema_registry_url)?;
    if let Some(url) = &conn.rest_proxy_url {
        http_url("--rest-proxy-url", url)?;
    }
    if let Some(auth) = &conn.schema_registry_auth {
        if !auth.contains(':') {
            return Err("--schema-registry-auth must be user:password".into());
        }
    }
    if conn.connect_timeout_secs == 0 {
        return Err("--connect-timeout-secs must be at least 1".into());
    }
    if conn.bootstrap_servers.trim().is_empty() {
        return Err("--bootstrap-servers must not be empty".into());
    }
    for property in &conn.kafka_properties {
        property.check()?;
    }
    for config in [
        conn.producer_config(PRODUCER_DEFAULTS),
        conn.consumer_config(CONSUMER_DEFAULTS),
    ] {
        config
            .create_native_config()
            .map_err(|e| format!("invalid Kafka client property (-X): {e}"))?;
    }
    Ok(())
}

/// Kafka's rule for topic names: 1 to 249 of ASCII letters, digits, `.`, `_` and `-`, and not
/// `.` or `..`.
pub fn topic_name(topic: &str) -> Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty() || topic.len() > 249 || topic == "." || topic == ".." {
        return Err(format!(
            "invalid topic name `{topic}`: it must have 1 to 249 characters and not be `.` or `..`"
        ));
    }
    if let Some(c) = topic.chars().find(|c| !legal(*c)) {
        return Err(format!(
            "invalid topic name `{topic}`: `{c}` is not allowed (use ASCII letters, digits, `.`, `_`, `-`)"
        ));
    }
    Ok(())
}

/// [`topic_name`] as a clap value parser, for flags that take a topic.
pub fn topic_arg(topic: &str) -> Result<String, String> {
    topic_name(topic).map(|()| topic.to_string())
}

/// An `http://` or `https://` URL with a host.
pub fn http_url(flag: &str, url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{flag} `{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(format!(
            "{flag} `{url}` must be an http:// or https:// URL with a host"
        ));
    }
    Ok(())
}

/// A sha256 in hex: 64 hex digits.
pub fn sha256_pin(pin: &str) -> Result<(), String> {
    let pin = pin.trim();
    if pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "--plugin-sha256 must be 64 hex digits (a sha256), not `{pin}`"
        ));
    }
    Ok(())
}

/// `--status-fd` names a file descriptor this process inherited open, and not stdin, stdout
/// or stderr: anything else would make status lines write into whatever that number is.
pub fn status_fd(fd: i32) -> Result<(), String> {
    if fd < 3 {
        return Err(format!(
            "--status-fd must be an inherited descriptor above 2, not {fd}"
        ));
    }
    // SAFETY: F_GETFD only asks whether the descriptor is open; it changes nothing.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(format!("--status-fd {fd} is not an open file descriptor"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> RunArgs {
        let mut all = vec!["stage-host", "--plugin", "lib.so"];
        all.extend_from_slice(extra);
        crate::cli::Cli::try_parse_from(all).expect("parses").run
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(run_args(&args(&[])), Ok(()));
    }

    #[test]
    fn refuses_each_bad_value_with_its_flag() {
        for (extra, needle) in [
            (vec!["-X", "foo=bar"], "-X"),
            (vec!["-X", "acks=banana"], "-X"),
            (vec!["-X", "group.id=other"], "--group-id"),
            (
                vec!["-X", "enable.auto.commit=true"],
                "-X enable.auto.commit",
            ),
            (vec!["-X", "consumer.linger.ms=5"], "producer property"),
            (vec!["--group-id", ""], "--group-id"),
            (vec!["--failure-window", "0"], "--failure-window"),
            (vec!["--max-failure-ratio", "NaN"], "--max-failure-ratio"),
            (vec!["--max-failure-ratio", "2"], "--max-failure-ratio"),
            (vec!["--max-failure-ratio", "0"], "--max-failure-ratio"),
            (vec!["--output-topic", "bad out"], "--output-topic"),
            (
                vec!["--dead-letter-topic", "bad dlq"],
                "--dead-letter-topic",
            ),
            (vec!["--input-topic", ".."], "--input-topic"),
            (vec!["--plugin-sha256", "not-hex"], "--plugin-sha256"),
            (
                vec!["--schema-registry-url", "ftp://host/"],
                "--schema-registry-url",
            ),
            (
                vec!["--rest-proxy-url", "localhost:8082"],
                "--rest-proxy-url",
            ),
            (
                vec!["--batch-wait-ms", "18446744073709551615"],
                "--batch-wait-ms",
            ),
            (vec!["--batch-size", "0"], "--batch-size"),
            (vec!["--status-fd", "1"], "--status-fd"),
            (vec!["--status-fd", "987"], "--status-fd"),
            (
                vec!["--schema-registry-auth", "nocolon"],
                "--schema-registry-auth",
            ),
        ] {
            let refused = run_args(&args(&extra)).expect_err(&format!("{extra:?} refused"));
            assert!(refused.contains(needle), "{extra:?}: {refused}");
        }
    }

    #[test]
    fn topic_names_follow_kafkas_rule() {
        assert!(topic_name("posts.v1_a-b").is_ok());
        for bad in ["", ".", "..", "a b", "ä", &"x".repeat(250)] {
            assert!(topic_name(bad).is_err(), "{bad:?}");
        }
    }
}
