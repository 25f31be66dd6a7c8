//! The broker killed (SIGKILL) and restarted twice while a stage is mid-stream. A test binary
//! of its own, so it does not share the machine with the other fault tests: its broker keeps
//! every write in an S3 server written in Python, which is slow under load.

use e2e_tests::restartable_broker::RestartableBroker;
use e2e_tests::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// Waits until `group` has committed `total` records of `topic` on `broker`: the stage has
/// finished every input record, and (at-least-once) the broker acknowledged every output.
fn wait_for_commits_on(broker: &RestartableBroker, topic: &str, group: &str, total: i64) {
    let bootstrap = broker.bootstrap();
    let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let sum: i64 = committed_with(&env, topic, group)
            .values()
            .map(|o| o.max(&0))
            .sum();
        if sum >= total {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stage committed {sum} of {total} input records"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Waits until `topic` on `broker` holds at least `count` records.
fn wait_for_count_on(broker: &RestartableBroker, topic: &str, count: usize) {
    let bootstrap = broker.bootstrap();
    consume_avro_with(
        &[("BOOTSTRAP_SERVERS", bootstrap.as_str())],
        topic,
        count,
        300,
    );
}

/// `records_out` from the stage's final log line.
fn records_out(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.contains("stage stopped"))
        .find_map(|l| l.split("records_out=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a 'stage stopped ... records_out=N' line")
}

// Ignored in the default run: on this tansu build the test is not deterministic. In most runs
// the stage rides through both restarts; in some, after a restart the broker reports the
// group as stable with no members while the stage still holds its assignment, and nothing
// more is consumed (a Python confluent-kafka consumer and producer stalled the same way).
// Run it with `cargo test -p e2e-tests --test broker_restart -- --ignored`.
#[test]
#[ignore = "the S3-backed tansu sometimes loses group membership on restart; see the comment"]
fn at_least_once_loses_nothing_when_the_broker_is_killed_and_restarted_under_load() {
    if !cluster_available() {
        return;
    }
    const TOTAL: u32 = 6000;
    let mut broker = RestartableBroker::start();
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
    let stage = StageProcess::start(&args);

    wait_for_count_on(&broker, &output, 500);
    broker.kill();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    produce(4000, 1000);

    wait_for_count_on(&broker, &output, 2500);
    broker.kill();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    produce(5000, 1000);

    wait_for_commits_on(&broker, &input, &group, TOTAL as i64);
    let done = stage.terminate(Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let records = consume_avro_with(&env, &output, 0, 120);

    // The stage's output topic has one partition, so the broker gave its acknowledged
    // records the offsets 0, 1, 2, ...: every offset below the highest of (records the stage
    // sent, last offset read + 1) was acknowledged. Offsets among those that cannot be read
    // are records the broker acknowledged and then lost: this tansu's s3:// engine loses the
    // batch it is writing when killed, while the offset stays taken. The stage cannot see
    // that; what it must never do is commit input whose outputs were not acknowledged, and
    // then a record is missing with no lost offset to account for it.
    let counts = post_counts(&records);
    let missing: Vec<u32> = (0..TOTAL).filter(|n| !counts.contains_key(n)).collect();
    let readable: BTreeSet<i64> = records.iter().map(|r| r.offset).collect();
    assert!(records.iter().all(|r| r.partition == 0));
    let last = readable.last().copied().unwrap_or(-1);
    let acknowledged = records_out(&done.stderr).max((last + 1) as u64);
    let lost_by_broker = acknowledged - readable.len() as u64;
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "at-least-once, broker killed and restarted twice under load: {TOTAL} sent, {} missing \
         from the output, {lost_by_broker} acknowledged offsets the broker lost, \
         {duplicates} duplicates",
        missing.len()
    );
    assert!(
        missing.len() as u64 <= lost_by_broker,
        "records missing with no lost offset to account for them: {missing:?}"
    );
}
