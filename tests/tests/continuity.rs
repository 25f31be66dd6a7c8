//! The continuity audit on Apache Kafka: every jump in the offsets a stage's consumer is
//! handed is counted and named, with real causes of gaps made on purpose: transaction markers
//! of an exactly-once producer, an aborted transaction, records deleted before the group read
//! them. And `--on-offset-gap fail` stops a stage before it commits past a gap.

use e2e_tests::*;
use std::time::Duration;

/// Runs stage two from `input` to `output` in `group` with `extra` flags.
fn stage_two(input: &str, output: &str, group: &str, extra: &[&str]) -> StageProcess {
    let plugin = plugin("stage-two");
    let mut args = stage_args(&plugin, input, output, group);
    args.extend_from_slice(extra);
    StageProcess::start(&args)
}

/// The lines of `stderr` that warn about an offset gap.
fn gap_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("offset gap"))
        .collect()
}

/// Produces `count` stage-one records from `start` in one transaction, committed or aborted.
fn produce_in_transaction(topic: &str, start: u32, count: u32, outcome: &str) {
    kafka_tool(&[
        "produce-avro",
        "--topic",
        topic,
        "--schema",
        schema("stage_one.json").to_str().unwrap(),
        "--start",
        &start.to_string(),
        "--count",
        &count.to_string(),
        "--transaction",
        outcome,
    ]);
}

#[test]
fn transaction_markers_are_counted_not_warned_and_the_group_commits_past_them() {
    if !cluster_available() {
        return;
    }
    let input = unique("markers_in");
    let output = unique("markers_out");
    let group = unique("markers_g");
    // An exactly-once source: one transaction per poll of 100, over 4 partitions.
    let source = plugin("stage-one");
    let done = run_stage_host(
        &[
            "--plugin",
            source.to_str().unwrap(),
            "--output-topic",
            &input,
            "--config-json",
            r#"{"records": 600, "rate_per_second": 0}"#,
            "--batch-size",
            "100",
            "--exactly-once",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let stage = stage_two(&input, &output, &group, &["--metrics-addr", &addr]);
    assert_eq!(post_counts(&consume_avro(&output, 600, 60)).len(), 600);
    // Lag reaches 0: the group's offsets pass the last marker of every partition.
    let metrics = wait_for("the lag to clear", Duration::from_secs(60), || {
        let text = http_get(&addr, "/metrics").ok_or("no answer")?.body;
        let all = parse_prometheus(&text);
        let lag: f64 = samples(&all, "stage_host_consumer_lag", &[])
            .iter()
            .map(|s| s.value)
            .sum();
        let lagging = samples(&all, "stage_host_consumer_lag", &[]).len() < 4 || lag > 0.0;
        if lagging {
            Err(format!("lag {lag}"))
        } else {
            Ok(all)
        }
    });
    let by_reason = |reason: &str| -> f64 {
        samples(
            &metrics,
            "stage_host_offset_gaps_total",
            &[("reason", reason)],
        )
        .iter()
        .map(|s| s.value)
        .sum()
    };
    assert!(
        by_reason("transaction_marker") >= 4.0,
        "one marker gap per partition at least"
    );
    for reason in ["aborted_transaction", "compaction", "seek", "unknown"] {
        assert_eq!(by_reason(reason), 0.0, "{reason} gaps");
    }
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(gap_warnings(&done.stderr).is_empty(), "{}", done.stderr);
    let described = describe_group("127.0.0.1:9092", &group, &input);
    assert_eq!(described.len(), 4, "{described:?}");
    for row in &described {
        assert_eq!(
            row.committed, row.log_end,
            "committed past the markers: {described:?}"
        );
    }
}

#[test]
fn an_aborted_transaction_is_a_gap_named_as_such() {
    if !cluster_available() {
        return;
    }
    let input = unique("aborted_in");
    let output = unique("aborted_out");
    let group = unique("aborted_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 10);
    produce_in_transaction(&input, 10, 5, "abort");
    produce_posts(&input, 15, 10);
    let stage = stage_two(&input, &output, &group, &[]);
    let records = consume_avro(&output, 20, 60);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let posts: Vec<u32> = post_counts(&records).into_keys().collect();
    let expected: Vec<u32> = (0..10).chain(15..25).collect();
    assert_eq!(posts, expected, "the aborted records are not read");
    // Offsets 10..=14 hold the aborted records and 15 the abort marker.
    let warnings = gap_warnings(&done.stderr);
    assert_eq!(warnings.len(), 1, "{}", done.stderr);
    for needle in [
        &format!("offset gap on {input}[0]: offsets 10..=15 (6 records)"),
        "aborted transaction",
    ] {
        assert!(
            warnings[0].contains(needle),
            "{needle:?} missing: {}",
            warnings[0]
        );
    }
}

#[test]
fn records_deleted_before_the_group_read_them_are_a_gap_of_an_offset_reset() {
    if !cluster_available() {
        return;
    }
    let input = unique("deleted_in");
    let output = unique("deleted_out");
    let group = unique("deleted_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 100);
    // The group has read 10 records; then records before offset 50 are deleted.
    kafka_cli(&[
        "consumer-groups",
        "--bootstrap-server",
        "127.0.0.1:9092",
        "--group",
        &group,
        "--topic",
        &input,
        "--reset-offsets",
        "--to-offset",
        "10",
        "--execute",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("offsets.json");
    std::fs::write(
        &offsets,
        format!(
            r#"{{"partitions":[{{"topic":"{input}","partition":0,"offset":50}}],"version":1}}"#
        ),
    )
    .unwrap();
    kafka_cli(&[
        "delete-records",
        "--bootstrap-server",
        "127.0.0.1:9092",
        "--offset-json-file",
        offsets.to_str().unwrap(),
    ]);
    let stage = stage_two(&input, &output, &group, &[]);
    consume_avro(&output, 50, 60);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let warnings = gap_warnings(&done.stderr);
    assert_eq!(warnings.len(), 1, "{}", done.stderr);
    for needle in [
        &format!("offset gap on {input}[0]: offsets 10..=49 (40 records)"),
        "offset reset",
    ] {
        assert!(
            warnings[0].contains(needle),
            "{needle:?} missing: {}",
            warnings[0]
        );
    }
}

#[test]
fn on_offset_gap_fail_stops_the_stage_before_it_commits_past_a_gap() {
    if !cluster_available() {
        return;
    }
    let input = unique("gapfail_in");
    let output = unique("gapfail_out");
    let group = unique("gapfail_g");
    create_topic(&input, 1);
    // Two committed transactions: records 0..=9, a marker at 10, records 11..=20, a marker.
    produce_in_transaction(&input, 0, 10, "commit");
    produce_in_transaction(&input, 10, 10, "commit");
    let done = stage_two(&input, &output, &group, &["--on-offset-gap", "fail"])
        .wait(Duration::from_secs(60));
    done.assert_failed_with(
        1,
        &[
            &format!("offset gap on {input}[0]: offsets 10..=10 (1 records)"),
            "transaction markers",
            "--on-offset-gap fail",
        ],
    );
    let committed = committed(&input, &group);
    assert!(
        committed.values().all(|&o| o <= 10),
        "committed past the gap: {committed:?}"
    );
}
