//! The broker killed (SIGKILL) and restarted on the same data, twice, while a stage is
//! mid-stream. The stage is never restarted: it must ride through both restarts by itself.
//! At-least-once loses nothing; exactly-once loses nothing and duplicates nothing. Counted
//! with two independent witnesses (confluent-kafka and Kafka's own console consumer, both
//! `read_committed`), and the group's offsets checked with `kafka-consumer-groups`.
//!
//! Each test has a broker of its own (`PrivateKafka`): killing the shared one would fail every
//! other test running at the time.

use e2e_tests::private_kafka::PrivateKafka;
use e2e_tests::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TOTAL: u32 = 6000;

/// The sum of `group`'s committed offsets on `topic` (partitions with none count 0).
fn committed_sum(env: &[(&str, &str)], topic: &str, group: &str) -> i64 {
    committed_with(env, topic, group)
        .values()
        .map(|o| (*o).max(0))
        .sum()
}

/// Waits until `topic` holds at least `count` records (read_committed) and `group` has
/// committed fewer than `total` input records: the stage is provably mid-stream.
fn wait_mid_stream(env: &[(&str, &str)], output: &str, count: usize, input: &str, group: &str) {
    consume_avro_with(env, output, count, 300);
    let committed = committed_sum(env, input, group);
    assert!(
        committed < TOTAL as i64,
        "the stage finished ({committed} committed) before the broker could be killed mid-stream"
    );
}

/// Kills the broker, waits a moment (clients see the connection refused), starts it again.
fn crash_and_restart(broker: &mut PrivateKafka) {
    broker.kill();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
}

/// Runs a slow stage from a 2-partition input while the broker is killed and restarted twice,
/// producing more input after each restart; returns the output read by confluent-kafka, the
/// keys read by Kafka's console consumer, and the stage's stderr.
fn restart_broker_twice_under(extra: &[&str]) -> (Vec<ConsumedRecord>, Vec<String>) {
    let mut broker = PrivateKafka::start();
    let bootstrap = broker.bootstrap();
    let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
    let input = unique("restart_in");
    let output = unique("restart_out");
    let group = unique("restart_g");
    let produce = |start: u32, count: u32| produce_posts_with(&env, &input, start, count);
    kafka_tool_with(
        &env,
        &["create-topic", "--topic", &input, "--partitions", "2"],
    );
    produce(0, 4000);

    // A slow stage (about 2 ms a record), so each kill lands while thousands of records are
    // still to be consumed, transformed, produced and committed.
    let plugin = plugin("faulty-stage");
    let mut args = stage_args(&plugin, &input, &output, &group);
    args.extend_from_slice(&[
        "--config-json",
        r#"{"slow_ms": 2}"#,
        "--batch-size",
        "50",
        "--bootstrap-servers",
        &bootstrap,
    ]);
    args.extend_from_slice(extra);
    let stage = StageProcess::start(&args);

    wait_mid_stream(&env, &output, 500, &input, &group);
    crash_and_restart(&mut broker);
    produce(4000, 1000);

    wait_mid_stream(&env, &output, 2500, &input, &group);
    crash_and_restart(&mut broker);
    produce(5000, 1000);

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let committed = committed_sum(&env, &input, &group);
        if committed >= TOTAL as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stage committed {committed} of {TOTAL} input records after the restarts"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let done = stage.terminate(Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{}", done.stderr);

    // Kafka's own view of the group: every input partition committed to its end.
    let described = describe_group(&bootstrap, &group, &input);
    assert_eq!(described.len(), 2, "{described:?}");
    for row in &described {
        assert_eq!(row.committed, row.log_end, "group offsets: {described:?}");
    }
    let records = consume_avro_with(&env, &output, 0, 120);
    let keys = console_consumer_keys(&bootstrap, &output, records.len(), Duration::from_secs(10));
    (records, keys)
}

/// How often each key occurs.
fn key_counts(keys: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for key in keys {
        *counts.entry(key.as_str()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn at_least_once_loses_nothing_when_the_broker_is_killed_and_restarted_under_load() {
    if !cluster_available() {
        return;
    }
    let (records, keys) = restart_broker_twice_under(&[]);
    let counts = post_counts(&records);
    let missing: Vec<u32> = (0..TOTAL).filter(|n| !counts.contains_key(n)).collect();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "at-least-once, broker killed and restarted twice under load: {TOTAL} sent, {} lost, \
         {duplicates} duplicated",
        missing.len()
    );
    assert!(missing.is_empty(), "records lost: {missing:?}");
    assert_eq!(
        key_counts(&keys).len(),
        TOTAL as usize,
        "Kafka's console consumer sees every key"
    );
}

#[test]
fn exactly_once_loses_and_duplicates_nothing_when_the_broker_is_killed_and_restarted() {
    if !cluster_available() {
        return;
    }
    let txn_id = unique("restart_txn");
    let (records, keys) =
        restart_broker_twice_under(&["--exactly-once", "--transactional-id", &txn_id]);
    let counts = post_counts(&records);
    let missing: Vec<u32> = (0..TOTAL).filter(|n| !counts.contains_key(n)).collect();
    let duplicated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    eprintln!(
        "exactly-once, broker killed and restarted twice under load: {TOTAL} sent, {} lost, \
         {} duplicated",
        missing.len(),
        duplicated.len()
    );
    assert!(missing.is_empty(), "records lost: {missing:?}");
    assert!(duplicated.is_empty(), "records duplicated: {duplicated:?}");
    assert_eq!(records.len(), TOTAL as usize);
    let by_key = key_counts(&keys);
    assert_eq!(keys.len(), TOTAL as usize, "Kafka's console consumer count");
    assert_eq!(by_key.len(), TOTAL as usize, "each key once");
}
