//! Bad input, tried as a new user would: each case ends with the documented exit code and one
//! error line, every wait gives way to SIGTERM, and no record is lost.

use e2e_tests::private_kafka::PrivateKafka;
use e2e_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

const EXIT_BAD_CONFIG: i32 = 2;
const EXIT_BAD_PLUGIN: i32 = 3;
const EXIT_UNREACHABLE: i32 = 4;
const EXIT_REFUSED: i32 = 5;

fn stage_two(input: &str, output: &str, group: &str, extra: &[&str]) -> StageProcess {
    let plugin = plugin("stage-two");
    let mut args = stage_args(&plugin, input, output, group);
    args.extend_from_slice(extra);
    StageProcess::start(&args)
}

/// A record that fails alone in its batch (it arrives after the stage went idle) is handled
/// by the policy; the stage goes on and stops cleanly.
fn a_lone_failing_record_under(extra: &[&str]) -> (Finished, String) {
    let input = unique("lone_fail_in");
    let output = unique("lone_fail_out");
    let dlq = format!("{output}.dlq");
    let group = unique("lone_fail_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 5);
    let stage = stage_two(&input, &output, &group, extra);
    consume_avro(&output, 5, 60);
    produce_raw(&input, "bad", b"not avro");
    produce_posts(&input, 5, 5);
    let records = consume_avro(&output, 10, 60);
    assert_eq!(post_counts(&records).len(), 10);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
    (done, dlq)
}

#[test]
fn a_batch_of_only_failing_records_is_skipped_not_a_panic() {
    if !cluster_available() {
        return;
    }
    let (done, _) = a_lone_failing_record_under(&["--on-error", "skip"]);
    assert!(done.stderr.contains("skipping record"), "{}", done.stderr);
}

#[test]
fn a_batch_of_only_failing_records_is_dead_lettered_not_a_panic() {
    if !cluster_available() {
        return;
    }
    let (_, dlq) = a_lone_failing_record_under(&["--on-error", "dead-letter"]);
    assert_eq!(consume_raw(&dlq, 1, 30).len(), 1);
}

#[test]
fn a_batch_of_only_failing_records_is_dead_lettered_under_exactly_once() {
    if !cluster_available() {
        return;
    }
    let txn = unique("lone_fail_txn");
    let (_, dlq) = a_lone_failing_record_under(&[
        "--on-error",
        "dead-letter",
        "--exactly-once",
        "--transactional-id",
        &txn,
    ]);
    assert_eq!(consume_raw(&dlq, 1, 30).len(), 1);
}

/// SIGTERM after `after`, then the process must exit within `within`.
fn terminate_after(stage: StageProcess, after: Duration, within: Duration) -> Finished {
    std::thread::sleep(after);
    let sent = Instant::now();
    let done = stage.terminate(within);
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());
    done
}

#[test]
fn sigterm_while_a_batch_fills_stops_the_stage_at_once_with_the_batch_processed() {
    if !cluster_available() {
        return;
    }
    let input = unique("fill_in");
    let output = unique("fill_out");
    let group = unique("fill_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 3);
    let stage = stage_two(&input, &output, &group, &["--batch-wait-ms", "90000"]);
    // Joined and holding three records in a batch that waits 90 s for more.
    let done = terminate_after(stage, Duration::from_secs(6), Duration::from_secs(15));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    // Stopping finishes the batch in hand: its records are produced and committed.
    assert_eq!(post_counts(&consume_avro(&output, 3, 30)).len(), 3);
    assert_eq!(committed(&input, &group).get(&0), Some(&3));
}

#[test]
fn a_batch_wait_beyond_the_limit_is_refused_before_connecting() {
    let plugin = plugin("stage-two");
    let done = run_stage_host(
        &[
            "--plugin",
            plugin.to_str().unwrap(),
            "--batch-wait-ms",
            "18446744073709551615",
            "--bootstrap-servers",
            "127.0.0.1:1",
        ],
        Duration::from_secs(30),
    );
    done.assert_failed_with(EXIT_BAD_CONFIG, &["--batch-wait-ms"]);
}

#[test]
fn a_dry_run_refuses_a_metrics_port_that_is_taken_as_the_run_would() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let plugin = plugin("stage-two");
    let done = run_stage_host(
        &[
            "--plugin",
            plugin.to_str().unwrap(),
            "--metrics-addr",
            &addr,
            "--dry-run",
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--connect-timeout-secs",
            "2",
        ],
        Duration::from_secs(30),
    );
    done.assert_failed_with(EXIT_BAD_CONFIG, &["--metrics-addr", &addr]);
}

#[test]
fn kafka_properties_the_host_owns_are_refused_naming_the_flag() {
    let plugin = plugin("stage-two");
    for (property, needles) in [
        ("group.id=other", vec!["-X group.id", "--group-id"]),
        (
            "enable.auto.commit=true",
            vec!["-X enable.auto.commit", "commits offsets itself"],
        ),
        (
            "transactional.id=t",
            vec!["-X transactional.id", "--transactional-id"],
        ),
        (
            "consumer.linger.ms=5",
            vec!["-X consumer.linger.ms", "producer property"],
        ),
    ] {
        let done = run_stage_host(
            &[
                "--plugin",
                plugin.to_str().unwrap(),
                "-X",
                property,
                "--bootstrap-servers",
                "127.0.0.1:1",
                "--connect-timeout-secs",
                "2",
            ],
            Duration::from_secs(30),
        );
        done.assert_failed_with(EXIT_BAD_CONFIG, &needles);
    }
}

/// Consumer and producer properties, with and without a prefix, reach their own client only:
/// librdkafka warns (CONFWARN) about none of them.
#[test]
fn documented_kafka_properties_reach_their_clients_without_warnings() {
    if !cluster_available() {
        return;
    }
    let input = unique("props_in");
    let output = unique("props_out");
    let group = unique("props_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 3);
    let stage = stage_two(
        &input,
        &output,
        &group,
        &[
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "partition.assignment.strategy=cooperative-sticky",
            "-X",
            "linger.ms=10",
            "-X",
            "consumer.fetch.wait.max.ms=50",
            "-X",
            "producer.compression.type=zstd",
            "-X",
            "consumer.client.id=props-reader",
            "-X",
            "statistics.interval.ms=1000",
        ],
    );
    // Consumed and produced: both clients exist and have run.
    assert_eq!(post_counts(&consume_avro(&output, 3, 60)).len(), 3);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(!done.stderr.contains("CONFWARN"), "{}", done.stderr);
    assert!(!done.stderr.contains("will be ignored"), "{}", done.stderr);
}

#[test]
fn sigterm_while_connecting_exits_0_at_once() {
    let plugin = plugin("stage-two");
    let stage = StageProcess::start(&[
        "--plugin",
        plugin.to_str().unwrap(),
        "--bootstrap-servers",
        "127.0.0.1:1",
        "--connect-timeout-secs",
        "60",
    ]);
    let done = terminate_after(stage, Duration::from_secs(3), Duration::from_secs(10));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.error_lines().is_empty(), "{}", done.stderr);
    assert!(
        done.stderr.contains("stopped by a signal during start-up"),
        "{}",
        done.stderr
    );
}

#[test]
fn sigterm_while_waiting_for_the_input_topic_exits_0() {
    if !cluster_available() {
        return;
    }
    let stage = stage_two(
        &unique("never_created"),
        &unique("wait_out"),
        &unique("wait_g"),
        &["--input-topic-timeout-secs", "60"],
    );
    let done = terminate_after(stage, Duration::from_secs(5), Duration::from_secs(10));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.error_lines().is_empty(), "{}", done.stderr);
}

#[test]
fn a_second_signal_ends_a_drain_that_waits_for_a_broker_that_is_gone() {
    if !cluster_available() {
        return;
    }
    let mut broker = PrivateKafka::start();
    let bootstrap = broker.bootstrap();
    let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
    let input = unique("drain_in");
    let output = unique("drain_out");
    let group = unique("drain_g");
    kafka_tool_with(&env, &["create-topic", "--topic", &input]);
    produce_posts_with(&env, &input, 0, 5000);
    let plugin = plugin("faulty-stage");
    let mut args = stage_args(&plugin, &input, &output, &group);
    args.extend_from_slice(&[
        "--config-json",
        r#"{"slow_ms": 1}"#,
        "--batch-size",
        "50",
        "--bootstrap-servers",
        &bootstrap,
        "--flush-timeout-secs",
        "120",
    ]);
    let stage = StageProcess::start(&args);
    consume_avro_with(&env, &output, 500, 60);
    broker.kill();
    // Outputs pile up unacknowledged; the first SIGTERM starts a drain that would wait the
    // whole flush timeout for them.
    std::thread::sleep(Duration::from_secs(2));
    signal(stage.pid(), "TERM");
    std::thread::sleep(Duration::from_secs(2));
    let done = stage.terminate(Duration::from_secs(10));
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
}

/// A pipeline file in its own directory, run with `stage-host pipeline run`.
fn run_pipeline(toml: &str, timeout: Duration) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, toml).unwrap();
    run_stage_host(&["pipeline", "run", file.to_str().unwrap()], timeout)
}

#[test]
fn a_stage_the_cluster_refuses_at_start_up_fails_the_pipeline_instead_of_restarting_for_ever() {
    if !cluster_available() {
        return;
    }
    let one = unique("refused_one");
    let two = unique("refused_two");
    // The registry already holds an incompatible schema for stage two's output.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.avsc");
    std::fs::write(
        &other,
        r#"{"type":"record","name":"other","fields":[{"name":"postid","type":"int"}]}"#,
    )
    .unwrap();
    let registered = stage_host_output(&[
        "schema",
        "register",
        "--topic",
        &two,
        "--file",
        other.to_str().unwrap(),
    ]);
    assert!(registered.status.success(), "{registered:?}");
    let toml = format!(
        r#"[pipeline]
name = "refused"
[[stage]]
name = "one"
plugin = "{}"
config = {{ records = 10, rate_per_second = 0 }}
output_topic = "{one}"
[[stage]]
name = "two"
plugin = "{}"
input_topic = "{one}"
output_topic = "{two}"
group_id = "{two}_g"
"#,
        plugin("stage-one").display(),
        plugin("stage-two").display()
    );
    let done = run_pipeline(&toml, Duration::from_secs(90));
    done.assert_failed_with(EXIT_REFUSED, &["stage two failed to start", "exit code 5"]);
}

#[test]
fn a_cycle_in_a_pipeline_is_refused_naming_stages_and_topics() {
    let x = unique("cycle_x");
    let y = unique("cycle_y");
    let toml = format!(
        r#"[pipeline]
name = "cycle"
[[stage]]
name = "a"
plugin = "{two}"
input_topic = "{x}"
output_topic = "{y}"
[[stage]]
name = "b"
plugin = "{two}"
input_topic = "{y}"
output_topic = "{x}"
"#,
        two = plugin("stage-two").display()
    );
    let done = run_pipeline(&toml, Duration::from_secs(30));
    done.assert_failed_with(
        EXIT_BAD_CONFIG,
        &[
            "stages form a cycle",
            &format!("a writes {y}"),
            &format!("b writes {x}"),
        ],
    );
}

#[test]
fn a_thousand_replicas_are_refused_when_the_file_is_read() {
    let toml = format!(
        "[pipeline]\nname = \"many\"\n[[stage]]\nname = \"two\"\nplugin = \"{}\"\nreplicas = 1000\n",
        plugin("stage-two").display()
    );
    let done = run_pipeline(&toml, Duration::from_secs(30));
    done.assert_failed_with(EXIT_BAD_CONFIG, &["1000 replicas", "max_replicas"]);
}

#[test]
fn a_missing_plugin_fails_the_pipeline_before_any_stage_starts() {
    if !cluster_available() {
        return;
    }
    let one = unique("missing_one");
    let toml = format!(
        r#"[pipeline]
name = "missing"
[[stage]]
name = "one"
plugin = "{}"
output_topic = "{one}"
[[stage]]
name = "two"
plugin = "/nonexistent/libstage_two.so"
input_topic = "{one}"
"#,
        plugin("stage-one").display()
    );
    let done = run_pipeline(&toml, Duration::from_secs(30));
    done.assert_failed_with(
        EXIT_BAD_PLUGIN,
        &["stage two", "/nonexistent/libstage_two.so"],
    );
    assert!(!done.stderr.contains("starting stage"), "{}", done.stderr);
    let topics = stage_host_output(&["topic", "list", "--json"]);
    assert!(
        !String::from_utf8_lossy(&topics.stdout).contains(&one),
        "stage one ran and created its topic"
    );
}

#[test]
fn every_bad_argument_is_exit_2_before_anything_touches_the_cluster() {
    if !cluster_available() {
        return;
    }
    let plugin = plugin("stage-two");
    let plugin = plugin.to_str().unwrap();
    let output = unique("validated_out");
    for (extra, needle) in [
        (vec!["-X", "foo=bar"], "foo"),
        (vec!["-X", "acks=banana"], "acks"),
        (vec!["-X", "acks=banana", "--dry-run"], "acks"),
        (vec!["--group-id", ""], "--group-id"),
        (vec!["--failure-window", "0"], "--failure-window"),
        (vec!["--max-failure-ratio", "NaN"], "--max-failure-ratio"),
        (vec!["--max-failure-ratio", "2"], "--max-failure-ratio"),
        (
            vec!["--exactly-once", "--transaction-ms", "600000"],
            "--transaction-ms",
        ),
        (
            vec![
                "--dead-letter-topic",
                "bad dlq",
                "--on-error",
                "dead-letter",
            ],
            "--dead-letter-topic",
        ),
        (vec!["--plugin-sha256", "not-hex"], "--plugin-sha256"),
        (
            vec!["--schema-registry-url", "ftp://127.0.0.1/"],
            "--schema-registry-url",
        ),
    ] {
        let mut args = vec!["--plugin", plugin, "--output-topic", &output];
        args.extend_from_slice(&extra);
        let done = run_stage_host(&args, Duration::from_secs(30));
        done.assert_failed_with(EXIT_BAD_CONFIG, &[needle]);
    }
    let done = run_stage_host(
        &["--plugin", plugin, "--output-topic", "bad out"],
        Duration::from_secs(30),
    );
    done.assert_failed_with(EXIT_BAD_CONFIG, &["--output-topic"]);
    // Nothing was created on the way.
    let topics = stage_host_output(&["topic", "list", "--json"]);
    assert!(!String::from_utf8_lossy(&topics.stdout).contains(&output));
    let register = stage_host_output(&[
        "schema",
        "register",
        "--topic",
        "bad topic",
        "--file",
        schema("stage_one.json").to_str().unwrap(),
    ]);
    assert_eq!(
        register.status.code(),
        Some(EXIT_BAD_CONFIG),
        "{register:?}"
    );
}

#[test]
fn an_unreachable_rest_proxy_is_exit_4() {
    if !cluster_available() {
        return;
    }
    let plugin = plugin("stage-two");
    let done = run_stage_host(
        &[
            "--plugin",
            plugin.to_str().unwrap(),
            "--output-topic",
            &unique("rest_unreachable_out"),
            "--rest-proxy-url",
            "http://127.0.0.1:1",
        ],
        Duration::from_secs(60),
    );
    done.assert_failed_with(EXIT_UNREACHABLE, &["REST Proxy"]);
}

#[test]
fn a_dry_run_with_an_incompatible_schema_is_exit_5_like_the_real_run() {
    if !cluster_available() {
        return;
    }
    let output = unique("dry_incompatible");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.avsc");
    std::fs::write(
        &other,
        r#"{"type":"record","name":"other","fields":[{"name":"postid","type":"int"}]}"#,
    )
    .unwrap();
    let registered = stage_host_output(&[
        "schema",
        "register",
        "--topic",
        &output,
        "--file",
        other.to_str().unwrap(),
    ]);
    assert!(registered.status.success(), "{registered:?}");
    let plugin = plugin("stage-two");
    let args = [
        "--plugin",
        plugin.to_str().unwrap(),
        "--output-topic",
        &output,
    ];
    let dry = run_stage_host(
        &[&args[..], &["--dry-run"]].concat(),
        Duration::from_secs(60),
    );
    dry.assert_failed_with(EXIT_REFUSED, &["not compatible"]);
    let real = run_stage_host(&args, Duration::from_secs(60));
    assert_eq!(real.code(), EXIT_REFUSED, "{}", real.stderr);
}

#[test]
fn a_tombstone_is_named_and_dead_lettered_as_a_tombstone() {
    if !cluster_available() {
        return;
    }
    let input = unique("tombstone_in");
    let output = unique("tombstone_out");
    let dlq = unique("tombstone_dlq");
    let group = unique("tombstone_g");
    create_topic(&input, 1);
    kafka_tool(&[
        "produce-raw",
        "--topic",
        &input,
        "--key",
        "gone",
        "--tombstone",
    ]);
    produce_posts(&input, 0, 1);
    let stage = stage_two(
        &input,
        &output,
        &group,
        &["--on-error", "dead-letter", "--dead-letter-topic", &dlq],
    );
    consume_avro(&output, 1, 60);
    let dead = consume_raw(&dlq, 1, 60);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        dead[0]["value_hex"].is_null(),
        "the copy stays a tombstone: {}",
        dead[0]
    );
    assert!(
        dead[0]["headers"]["stage.error.message"]
            .as_str()
            .unwrap_or_default()
            .contains("tombstone"),
        "{}",
        dead[0]
    );
}

#[test]
fn a_dead_letter_the_broker_refuses_names_the_record() {
    if !cluster_available() {
        return;
    }
    let input = unique("dlq_refused_in");
    let output = unique("dlq_refused_out");
    let dlq = unique("dlq_refused_dlq");
    let group = unique("dlq_refused_g");
    create_topic(&input, 1);
    kafka_cli(&[
        "topics",
        "--bootstrap-server",
        "127.0.0.1:9092",
        "--create",
        "--topic",
        &dlq,
        "--config",
        "max.message.bytes=200",
    ]);
    // Too big for the dead-letter topic, and not Avro.
    produce_raw(&input, "big", &[b'x'; 400]);
    let done = stage_two(
        &input,
        &output,
        &group,
        &["--on-error", "dead-letter", "--dead-letter-topic", &dlq],
    )
    .wait(Duration::from_secs(60));
    done.assert_failed_with(1, &[&format!("{input}[0]@0"), &dlq]);
    assert!(committed(&input, &group).values().all(|o| *o < 0));
}

#[test]
fn the_repositorys_schemas_print_no_avro_warnings() {
    if !cluster_available() {
        return;
    }
    let topic = unique("quiet_schema");
    for command in ["register", "check"] {
        let out = stage_host_output(&[
            "schema",
            command,
            "--topic",
            &topic,
            "--file",
            schema("stage_two.json").to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("Union schema"), "{stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.json");
    std::fs::write(&records, r#"[{"postid": "p1", "title": "t"}]"#).unwrap();
    let out = Command::new(stage_host())
        .args(["harness", "--plugin"])
        .arg(plugin("stage-two"))
        .arg("--input")
        .arg(&records)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Union schema"), "{stderr}");
}
