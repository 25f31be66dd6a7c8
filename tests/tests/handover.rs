//! Hand-overs commit what they finished: when partitions move between replicas of a stage
//! (one joins, both stop at once right after a rebalance, the broker restarts under them),
//! every record the first owner processed is committed before the next owner reads the
//! partition, so nothing is processed twice, and the group's committed offsets only ever move
//! forward. Counted with confluent-kafka (tests/tools/kafka_tool.py) and checked against the
//! group's offsets.

use e2e_tests::private_kafka::PrivateKafka;
use e2e_tests::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Topics and group of one test.
struct Names {
    input: String,
    output: String,
    group: String,
}

impl Names {
    fn new(test: &str) -> Names {
        Names {
            input: unique(&format!("{test}_in")),
            output: unique(&format!("{test}_out")),
            group: unique(&format!("{test}_g")),
        }
    }
}

/// A replica of a slow stage (about 1 ms a record, batches of 50), so partitions move while
/// batches are being processed and their outputs are in flight.
fn replica(n: &Names, extra: &[&str]) -> StageProcess {
    let plugin = plugin("faulty-stage");
    let mut args = stage_args(&plugin, &n.input, &n.output, &n.group);
    args.extend_from_slice(&["--config-json", r#"{"slow_ms": 1}"#, "--batch-size", "50"]);
    args.extend_from_slice(extra);
    StageProcess::start(&args)
}

fn committed_total(env: &[(&str, &str)], n: &Names) -> i64 {
    committed_with(env, &n.input, &n.group)
        .values()
        .map(|o| (*o).max(0))
        .sum()
}

/// Waits until the group has committed `total` input records.
fn wait_committed(env: &[(&str, &str)], n: &Names, total: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let committed = committed_total(env, n);
        if committed >= total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the group committed {committed} of {total} input records"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Lost and duplicated posts among `records`, of posts `0..total`.
fn lost_and_duplicated(records: &[ConsumedRecord], total: u32) -> (Vec<u32>, usize) {
    let counts = post_counts(records);
    let lost = (0..total).filter(|n| !counts.contains_key(n)).collect();
    let duplicated = counts.values().map(|c| c - 1).sum();
    (lost, duplicated)
}

/// librdkafka's refused commits (`COMMITFAIL`), expected while the group rebalances, appear at
/// most once per rebalance in a replica's log, at INFO, never as a warning flood.
fn assert_refused_commits_logged_once_per_rebalance(stderr: &str) {
    let lines = |text: &str| stderr.lines().filter(|l| l.contains(text)).count();
    let refused = lines("COMMITFAIL");
    let rebalances = lines("partitions assigned") + lines("partitions revoked");
    assert!(
        refused <= rebalances,
        "{refused} COMMITFAIL lines for {rebalances} rebalances: {stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("COMMITFAIL") && l.contains("WARN")),
        "a refused commit logged as a warning: {stderr}"
    );
}

#[test]
fn a_replica_joining_mid_stream_takes_partitions_over_without_reprocessing_any() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("handover_join");
    let total = 12_000;
    create_topic(&n.input, 4);
    produce_posts(&n.input, 0, total);
    let first = replica(&n, &[]);
    consume_avro(&n.output, 2_000, 120);
    assert!(
        committed_total(&[], &n) < i64::from(total),
        "the first replica finished before the second could join"
    );
    // The second replica's join revokes two of the first one's partitions mid-stream.
    let second = replica(&n, &[]);
    wait_committed(&[], &n, i64::from(total), Duration::from_secs(300));
    let first = first.terminate(Duration::from_secs(60));
    let second = second.terminate(Duration::from_secs(60));
    assert_eq!(first.code(), 0, "{}", first.stderr);
    assert_eq!(second.code(), 0, "{}", second.stderr);
    // Which partitions the first replica had read from when the join revoked two of them is
    // up to the fetcher: it commits what it finished of them, or says it had nothing to.
    assert!(
        first
            .stderr
            .contains("committed the revoked partitions before handing them over")
            || first
                .stderr
                .contains("nothing of the revoked partitions was finished"),
        "the first replica handed partitions over: {}",
        first.stderr
    );

    for replica in [&first, &second] {
        assert_refused_commits_logged_once_per_rebalance(&replica.stderr);
    }

    let records = consume_avro(&n.output, 0, 120);
    let (lost, duplicated) = lost_and_duplicated(&records, total);
    eprintln!(
        "a replica joining mid-stream: {total} records, {} lost, {duplicated} duplicated",
        lost.len()
    );
    assert!(lost.is_empty(), "records lost: {lost:?}");
    assert_eq!(
        duplicated, 0,
        "records processed twice across the hand-over"
    );
    assert_eq!(
        committed(&n.input, &n.group).values().sum::<i64>(),
        i64::from(total)
    );
}

#[test]
fn two_replicas_stopped_at_once_right_after_a_rebalance_commit_everything_they_finished() {
    if !cluster_available() {
        return;
    }
    let n = Names::new("handover_stop");
    let total = 12_000;
    create_topic(&n.input, 4);
    produce_posts(&n.input, 0, total);
    let first = replica(&n, &[]);
    consume_avro(&n.output, 1_000, 120);
    let second = replica(&n, &[]);
    // Stop both while the group is still settling the second one's join: each one's drain
    // and the other's leaving start rebalances under the other's final commit.
    std::thread::sleep(Duration::from_secs(2));
    signal(first.pid(), "TERM");
    signal(second.pid(), "TERM");
    let first = first.wait(Duration::from_secs(60));
    let second = second.wait(Duration::from_secs(60));
    assert_eq!(first.code(), 0, "{}", first.stderr);
    assert_eq!(second.code(), 0, "{}", second.stderr);
    for (name, stopped) in [("first", &first), ("second", &second)] {
        assert!(
            !stopped.stderr.contains("are not committed"),
            "the {name} replica left offsets uncommitted: {}",
            stopped.stderr
        );
    }
    let processed_before = consume_avro(&n.output, 0, 60).len();
    assert!(
        processed_before < total as usize,
        "both replicas finished the input before they were stopped"
    );

    // A third replica finishes the input from the group's offsets: whatever the first two
    // processed was committed, so it processes none of it again.
    let third = replica(&n, &[]);
    wait_committed(&[], &n, i64::from(total), Duration::from_secs(300));
    let third = third.terminate(Duration::from_secs(60));
    assert_eq!(third.code(), 0, "{}", third.stderr);
    let records = consume_avro(&n.output, 0, 120);
    let (lost, duplicated) = lost_and_duplicated(&records, total);
    eprintln!(
        "two replicas stopped at once after a rebalance: {processed_before} processed before the stop, {} lost, {duplicated} duplicated",
        lost.len()
    );
    assert!(lost.is_empty(), "records lost: {lost:?}");
    assert_eq!(duplicated, 0, "records processed again after the stop");
}

/// One reading of the group's offsets, and when it was taken.
type Reading = (Instant, BTreeMap<i32, i64>);

/// Every reading of the group's offsets, in order, from a thread that polls them until told
/// to stop.
struct OffsetPoller {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Reading>>,
}

impl OffsetPoller {
    fn start(bootstrap: &str, topic: &str, group: &str) -> OffsetPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let (bootstrap, topic, group) =
            (bootstrap.to_string(), topic.to_string(), group.to_string());
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
            let mut readings = Vec::new();
            while !stopping.load(Ordering::Acquire) {
                // The broker may be down for a moment: a reading that fails is no reading.
                if let Ok(offsets) = try_committed_with(&env, &topic, &group) {
                    readings.push((Instant::now(), offsets));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            readings
        });
        OffsetPoller { stop, thread }
    }

    fn finish(self) -> Vec<Reading> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("the poller ran")
    }
}

#[test]
fn committed_offsets_only_move_forward_when_the_broker_restarts_under_two_replicas() {
    if !cluster_available() {
        return;
    }
    let mut broker = PrivateKafka::start();
    let bootstrap = broker.bootstrap();
    let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
    let n = Names::new("handover_restart");
    let total = 12_000;
    kafka_tool_with(
        &env,
        &["create-topic", "--topic", &n.input, "--partitions", "4"],
    );
    produce_posts_with(&env, &n.input, 0, total);
    let poller = OffsetPoller::start(&bootstrap, &n.input, &n.group);
    let first = replica(&n, &["--bootstrap-servers", &bootstrap]);
    let second = replica(&n, &["--bootstrap-servers", &bootstrap]);
    consume_avro_with(&env, &n.output, 2_000, 300);
    assert!(
        committed_total(&env, &n) < i64::from(total),
        "the replicas finished before the broker could be killed"
    );
    let killed = Instant::now();
    broker.kill();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    wait_committed(&env, &n, i64::from(total), Duration::from_secs(300));
    // Keep reading for a while after the end: a stale commit would show up here.
    let ended = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let first = first.terminate(Duration::from_secs(60));
    let second = second.terminate(Duration::from_secs(60));
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let readings = poller.finish();
    assert_eq!(first.code(), 0, "{}", first.stderr);
    assert_eq!(second.code(), 0, "{}", second.stderr);

    let after = |t: Instant| readings.iter().filter(|(at, _)| *at > t).count();
    assert!(
        readings.len() > after(killed) && after(ended) >= 5 && after(stopped) >= 1,
        "readings before the kill, after the end and after the stop are needed: {} in all, {} after the kill, {} after the end, {} after the stop",
        readings.len(),
        after(killed),
        after(ended),
        after(stopped)
    );
    let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
    for (i, (_, reading)) in readings.iter().enumerate() {
        for (&partition, &offset) in reading {
            let before = highest.entry(partition).or_insert(offset);
            assert!(
                offset >= *before,
                "partition {partition}'s committed offset moved back from {before} to {offset} (reading {i} of {})",
                readings.len()
            );
            *before = offset;
        }
    }
    let described = describe_group(&bootstrap, &n.group, &n.input);
    assert_eq!(described.len(), 4, "{described:?}");
    for row in &described {
        assert_eq!(row.committed, row.log_end, "group offsets: {described:?}");
    }
    let records = consume_avro_with(&env, &n.output, 0, 120);
    let (lost, duplicated) = lost_and_duplicated(&records, total);
    eprintln!(
        "broker restart under two replicas: {} readings of the group's offsets, all forward; {} lost, {duplicated} duplicated",
        readings.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "records lost: {lost:?}");
}
