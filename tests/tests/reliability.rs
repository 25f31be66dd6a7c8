//! Faults on the real broker, each counted with an independent consumer (read_committed):
//! processes killed mid-batch, poison records, panicking and hanging plugins, a registry
//! outage, the circuit breaker, and the plugin file checks. The broker restart is in
//! broker_restart.rs.

use e2e_tests::private_registry::PrivateRegistry;
use e2e_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const FAULTY: &str = "faulty-stage";

/// [`stage_args`] plus the plugin's config.
fn stage_args_with_config<'a>(
    plugin: &'a std::path::Path,
    input: &'a str,
    output: &'a str,
    group: &'a str,
    config: &'a str,
) -> Vec<&'a str> {
    let mut args = stage_args(plugin, input, output, group);
    args.extend_from_slice(&["--config-json", config]);
    args
}
/// What a run with kills left behind: the output read by confluent-kafka (read_committed),
/// the output keys read by Kafka's own console consumer (read_committed), and the group's
/// committed offsets against the input's end offsets as `kafka-consumer-groups` reports them.
struct KilledRun {
    records: Vec<ConsumedRecord>,
    console_keys: Vec<String>,
    group: Vec<GroupPartition>,
}

/// The sum of `group`'s committed offsets on `topic` (partitions with none count 0).
fn committed_sum(topic: &str, group: &str) -> i64 {
    committed(topic, group).values().map(|o| (*o).max(0)).sum()
}

/// Waits until the stage is provably mid-stream: outputs are visible to a read_committed
/// consumer and the group committed more than `after` but fewer than `total` input records.
/// Returns the committed count.
fn wait_mid_stream(output: &str, input: &str, group: &str, after: i64, total: u32) -> i64 {
    wait_for(
        "the stage to be mid-stream",
        Duration::from_secs(120),
        || {
            let sum = committed_sum(input, group);
            assert!(
                sum < total as i64,
                "the stage finished ({sum} committed) before it could be killed mid-stream"
            );
            if sum > after && !consume_avro(output, 1, 30).is_empty() {
                Ok(sum)
            } else {
                Err(sum)
            }
        },
    )
}

/// Runs a slow stage over `total` records, killing it with SIGKILL `kills` times while it is
/// mid-stream and restarting it, then lets it finish.
fn kill_repeatedly(extra: &[&str], total: u32, kills: usize) -> KilledRun {
    let input = unique("kill_in");
    let output = unique("kill_out");
    let group = unique("kill_g");
    create_topic(&input, 2);
    produce_posts(&input, 0, total);
    let plugin = plugin(FAULTY);
    let mut args = stage_args_with_config(&plugin, &input, &output, &group, r#"{"slow_ms": 2}"#);
    args.extend_from_slice(&["--batch-size", "50"]);
    args.extend_from_slice(extra);
    let mut committed_before = 0;
    for _ in 0..kills {
        let stage = StageProcess::start(&args);
        committed_before = wait_mid_stream(&output, &input, &group, committed_before, total);
        signal(stage.pid(), "KILL");
        let killed = stage.wait(Duration::from_secs(10));
        assert!(killed.status.code().is_none(), "killed by SIGKILL");
    }
    let stage = StageProcess::start(&args);
    wait_for("every input committed", Duration::from_secs(180), || {
        let sum = committed_sum(&input, &group);
        if sum >= total as i64 {
            Ok(())
        } else {
            Err(sum)
        }
    });
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let records = consume_avro(&output, 0, 120);
    let console_keys = console_consumer_keys(
        "127.0.0.1:9092",
        &output,
        records.len(),
        Duration::from_secs(10),
    );
    KilledRun {
        records,
        console_keys,
        group: describe_group("127.0.0.1:9092", &group, &input),
    }
}

#[test]
fn at_least_once_loses_nothing_when_killed_mid_batch_repeatedly() {
    if !cluster_available() {
        return;
    }
    let run = kill_repeatedly(&[], 3000, 2);
    let counts = post_counts(&run.records);
    assert_eq!(counts.len(), 3000, "every input record is in the output");
    let keys: BTreeSet<&String> = run.console_keys.iter().collect();
    assert_eq!(keys.len(), 3000, "Kafka's console consumer sees every key");
    for row in &run.group {
        assert_eq!(row.committed, row.log_end, "group offsets: {:?}", run.group);
    }
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!("at-least-once: 3000 sent, 0 lost, {duplicates} duplicates after 2 kills");
}

#[test]
fn exactly_once_loses_nothing_and_duplicates_nothing_when_killed_repeatedly() {
    if !cluster_available() {
        return;
    }
    let txn_id = unique("kill_txn");
    let run = kill_repeatedly(&["--exactly-once", "--transactional-id", &txn_id], 3000, 2);
    let counts = post_counts(&run.records);
    assert_eq!(counts.len(), 3000, "every input record is in the output");
    let duplicated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        duplicated.is_empty(),
        "duplicates under exactly-once: {duplicated:?}"
    );
    assert_eq!(run.records.len(), 3000);
    // Kafka's own console consumer, read_committed, agrees: each key exactly once.
    assert_eq!(run.console_keys.len(), 3000, "console consumer count");
    let keys: BTreeSet<&String> = run.console_keys.iter().collect();
    assert_eq!(keys.len(), 3000, "console consumer keys");
    assert_eq!(run.group.len(), 2, "{:?}", run.group);
    for row in &run.group {
        assert_eq!(row.committed, row.log_end, "group offsets: {:?}", run.group);
    }
}

/// Runs stage one (a source that keeps a checkpoint) for `total` records, killing it with
/// SIGKILL once `1000` and then `2000` of its records are readable while it still runs, and
/// restarting it until it finishes. Returns the output (confluent-kafka, read_committed) and
/// the keys Kafka's console consumer reads (read_committed).
fn kill_source_repeatedly(extra: &[&str], total: u32) -> (Vec<ConsumedRecord>, Vec<String>) {
    let output = unique("kill_source_out");
    let plugin = plugin("stage-one");
    let config = format!(r#"{{"records": {total}, "rate_per_second": 400, "resume": true}}"#);
    let mut args = vec![
        "--plugin",
        plugin.to_str().unwrap(),
        "--output-topic",
        &output,
        "--config-json",
        &config,
    ];
    args.extend_from_slice(extra);
    for visible in [1000, 2000] {
        let mut source = StageProcess::start(&args);
        consume_avro(&output, visible, 60);
        assert!(
            source.is_running(),
            "the source finished before it could be killed mid-stream"
        );
        signal(source.pid(), "KILL");
        let killed = source.wait(Duration::from_secs(10));
        assert!(killed.status.code().is_none(), "killed by SIGKILL");
    }
    let done = StageProcess::start(&args).wait(Duration::from_secs(120));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("resuming from the source's checkpoint"),
        "{}",
        done.stderr
    );
    let records = consume_avro(&output, 0, 60);
    let keys = console_consumer_keys(
        "127.0.0.1:9092",
        &output,
        records.len(),
        Duration::from_secs(10),
    );
    (records, keys)
}

#[test]
fn an_exactly_once_source_killed_repeatedly_emits_every_record_once() {
    if !cluster_available() {
        return;
    }
    let txn_id = unique("kill_source_txn");
    let (records, keys) =
        kill_source_repeatedly(&["--exactly-once", "--transactional-id", &txn_id], 4000);
    let counts = post_counts(&records);
    let duplicated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert_eq!(counts.len(), 4000, "every record of the source, once");
    assert_eq!(records.len(), 4000);
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(
        (keys.len(), distinct.len()),
        (4000, 4000),
        "console consumer"
    );
}

#[test]
fn an_at_least_once_source_killed_repeatedly_resumes_and_loses_nothing() {
    if !cluster_available() {
        return;
    }
    let (records, keys) = kill_source_repeatedly(&[], 4000);
    let counts = post_counts(&records);
    assert_eq!(counts.len(), 4000, "every record of the source");
    // Resuming from the last acknowledged checkpoint repeats at most what followed it, not
    // the whole run.
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    assert!(
        duplicates < 2000,
        "{duplicates} duplicates: the source started over"
    );
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), 4000, "console consumer");
    eprintln!("at-least-once source: 4000 emitted, 0 lost, {duplicates} duplicated after 2 kills");
}

/// A stage run under the dead-letter policy.
struct DeadLetterRun<'a> {
    plugin_crate: &'a str,
    config: &'a str,
    input: &'a str,
    output: &'a str,
    dlq: &'a str,
    group: &'a str,
    extra: &'a [&'a str],
}

/// Runs the stage until `good` outputs and `dead` dead-lettered records arrived, stops it
/// (it must exit 0), and returns both.
fn run_dead_letter(
    run: DeadLetterRun<'_>,
    good: usize,
    dead: usize,
) -> (Vec<ConsumedRecord>, Vec<serde_json::Value>) {
    let plugin = plugin(run.plugin_crate);
    let mut args = stage_args_with_config(&plugin, run.input, run.output, run.group, run.config);
    args.extend_from_slice(&["--on-error", "dead-letter", "--dead-letter-topic", run.dlq]);
    args.extend_from_slice(run.extra);
    let stage = StageProcess::start(&args);
    let good = consume_avro(run.output, good, 90);
    let dead = consume_raw(run.dlq, dead, 60);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    (good, dead)
}

/// The source offset a dead-lettered record's headers name.
fn dead_letter_offset(record: &serde_json::Value) -> u32 {
    record["headers"]["stage.source.offset"]
        .as_str()
        .expect("a stage.source.offset header")
        .parse()
        .expect("a number")
}

#[test]
fn poison_records_land_in_the_dead_letter_topic_and_the_rest_in_order() {
    if !cluster_available() {
        return;
    }
    let input = unique("poison_in");
    let output = unique("poison_out");
    let dlq = unique("poison_dlq");
    let group = unique("poison_g");
    create_topic(&input, 1);
    let poison: Vec<u32> = (0..200).filter(|i| i % 25 == 7).collect();
    let poison_list = poison
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    kafka_tool(&[
        "produce-avro",
        "--topic",
        &input,
        "--schema",
        schema("stage_one.json").to_str().unwrap(),
        "--count",
        "200",
        "--poison-at",
        &poison_list,
    ]);
    let (good, dead) = run_dead_letter(
        DeadLetterRun {
            plugin_crate: "stage-two",
            config: "{}",
            input: &input,
            output: &output,
            dlq: &dlq,
            group: &group,
            extra: &["--batch-size", "30"],
        },
        200 - poison.len(),
        poison.len(),
    );
    let dead_offsets: Vec<u32> = dead.iter().map(dead_letter_offset).collect();
    assert_eq!(dead_offsets, poison, "exactly the poison records, in order");
    let good_numbers: BTreeSet<u32> = good.iter().map(ConsumedRecord::post_number).collect();
    let expected: BTreeSet<u32> = (0..200).filter(|i| !poison.contains(i)).collect();
    assert_eq!(good_numbers, expected);
    // One input partition: within each output partition, records keep their input order.
    let mut by_partition: BTreeMap<i32, Vec<(i64, u32)>> = BTreeMap::new();
    for r in &good {
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.offset, r.post_number()));
    }
    for (partition, mut records) in by_partition {
        records.sort_unstable();
        let numbers: Vec<u32> = records.iter().map(|(_, n)| *n).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} out of order: {numbers:?}"
        );
    }
    assert_eq!(committed(&input, &group).get(&0), Some(&200));
}

#[test]
fn a_plugin_that_panics_every_nth_record_dead_letters_exactly_those() {
    if !cluster_available() {
        return;
    }
    let input = unique("panic_in");
    let output = unique("panic_out");
    let dlq = unique("panic_dlq");
    let group = unique("panic_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 100);
    let (good, dead) = run_dead_letter(
        DeadLetterRun {
            plugin_crate: FAULTY,
            config: r#"{"fail": "transform_panic", "every": 5}"#,
            input: &input,
            output: &output,
            dlq: &dlq,
            group: &group,
            extra: &[],
        },
        80,
        20,
    );
    let good: BTreeSet<u32> = good.iter().map(ConsumedRecord::post_number).collect();
    assert_eq!(good, (0..100).filter(|i| i % 5 != 4).collect());
    for r in &dead {
        assert_eq!(r["headers"]["stage.error.kind"], "panic");
        assert_eq!(dead_letter_offset(r) % 5, 4);
    }
}

#[test]
fn a_plugin_that_hangs_is_stopped_by_the_batch_timeout_without_committing() {
    if !cluster_available() {
        return;
    }
    let input = unique("hang_in");
    let group = unique("hang_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 10);
    let plugin = plugin(FAULTY);
    let output = unique("hang_out");
    let mut args = stage_args_with_config(
        &plugin,
        &input,
        &output,
        &group,
        r#"{"fail": "hang", "every": 3}"#,
    );
    args.extend_from_slice(&["--batch-timeout-secs", "2"]);
    let done = run_stage_host(&args, Duration::from_secs(60));
    done.assert_failed_with(1, &["did not return within 2 s"]);
    let offset = committed(&input, &group).get(&0).copied().unwrap_or(-1);
    assert!(
        offset <= 2,
        "committed {offset}, past the record that hung (offset 2)"
    );
}

#[test]
fn the_circuit_breaker_stops_a_stage_whose_records_mostly_fail() {
    if !cluster_available() {
        return;
    }
    let input = unique("breaker_in");
    let group = unique("breaker_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 40);
    let plugin = plugin(FAULTY);
    let output = unique("breaker_out");
    let mut args = stage_args_with_config(
        &plugin,
        &input,
        &output,
        &group,
        r#"{"fail": "transform_error", "every": 1}"#,
    );
    args.extend_from_slice(&[
        "--on-error",
        "skip",
        "--failure-window",
        "20",
        "--max-failure-ratio",
        "0.5",
    ]);
    let done = run_stage_host(&args, Duration::from_secs(60));
    done.assert_failed_with(
        1,
        &["circuit breaker open", "of the last 20 records failed"],
    );
    let offset = committed(&input, &group).get(&0).copied().unwrap_or(-1);
    assert!(
        offset < 40,
        "the batch that tripped the breaker is not committed"
    );
}

#[test]
fn a_registry_outage_delays_records_with_new_schemas_but_loses_none() {
    if !cluster_available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let registry = PrivateRegistry::start(free_port(), data.path());
    let url = registry.url();
    let input = unique("outage_in");
    let output = unique("outage_out");
    let group = unique("outage_g");
    create_topic(&input, 1);
    produce_posts_with(&[("SCHEMA_REGISTRY_URL", &url)], &input, 0, 5);
    let plugin = plugin("stage-two");
    let mut args = stage_args_with_config(&plugin, &input, &output, &group, "{}");
    args.extend_from_slice(&["--schema-registry-url", &url]);
    let stage = StageProcess::start(&args);
    assert_eq!(consume_avro_with_registry(&url, &output, 5, 90).len(), 5);

    // Records written with a second schema version the stage has not seen yet...
    let v2 = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        v2.path(),
        r#"{"type":"record","name":"test_stage_one_topic_value","fields":[
            {"name":"postid","type":["string"]},
            {"name":"title","type":["string"],"default":"default_title"},
            {"name":"lang","type":"string","default":"en"}]}"#,
    )
    .unwrap();
    let framed = kafka_tool_with_registry(
        &url,
        &[
            "serialize",
            "--topic",
            &input,
            "--schema",
            v2.path().to_str().unwrap(),
            "--start",
            "5",
            "--count",
            "5",
        ],
    );
    // ...arrive while the registry is down: the stage retries the lookup, and goes on once
    // the registry is back (with the same data).
    let (port, dir) = registry.stop();
    for (i, hex) in framed.lines().enumerate() {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|k| u8::from_str_radix(&hex[k..k + 2], 16).unwrap())
            .collect();
        produce_raw(&input, &format!("postid_{}", 5 + i), &bytes);
    }
    std::thread::sleep(Duration::from_secs(4));
    let registry = PrivateRegistry::start(port, &dir);
    let records = consume_avro_with_registry(&registry.url(), &output, 10, 90);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.stderr.contains("retrying"), "{}", done.stderr);
    let numbers: BTreeSet<u32> = records.iter().map(ConsumedRecord::post_number).collect();
    assert_eq!(numbers, (0..10).collect());
}

// ---- plugin files ----

#[test]
fn a_plugin_in_a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libstage_two.so");
    std::fs::copy(plugin("stage-two"), &copy).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let done = run_stage_host(
        &["--plugin", copy.to_str().unwrap()],
        Duration::from_secs(30),
    );
    done.assert_failed_with(3, &["refusing to load plugin", "writable by others"]);

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o666)).unwrap();
    let done = run_stage_host(
        &["--plugin", copy.to_str().unwrap()],
        Duration::from_secs(30),
    );
    done.assert_failed_with(3, &["the file is writable by others"]);
}

#[test]
fn a_plugin_that_does_not_match_its_sha256_pin_is_refused() {
    let plugin = plugin("stage-two");
    let pin = "0".repeat(64);
    let done = run_stage_host(
        &[
            "--plugin",
            plugin.to_str().unwrap(),
            "--plugin-sha256",
            &pin,
        ],
        Duration::from_secs(30),
    );
    done.assert_failed_with(3, &["not the pinned"]);
}
