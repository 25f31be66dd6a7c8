//! Python stages under stage-host: the Python library's own example stages (read from the
//! library's files, never copied here) and the tests' scripts in `tests/python_stages/`, run
//! by the bridge plugin on the local cluster, with every result read back by an independent
//! client (Python confluent-kafka with its AvroDeserializer).

mod pipeline_support;

use e2e_tests::python_stage::{
    bridge, config, seed_app, seed_pipeline_script, sha256, test_script, venv_with_native_package,
};
use e2e_tests::{
    cluster_available, committed, consume_avro, consume_raw, produce_posts, run_stage_host,
    stage_args, unique, StageProcess,
};
use pipeline_support::PipelineRun;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The post ids `postid_0` .. `postid_{n-1}`.
fn post_ids(n: u32) -> BTreeSet<String> {
    (0..n).map(|i| format!("postid_{i}")).collect()
}

fn ids_of(records: &[e2e_tests::ConsumedRecord]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r.value["postid"].as_str().expect("a postid").to_string())
        .collect()
}

/// A pipeline stage table for the bridge running `class` of `script`.
fn python_stage_toml(name: &str, script: &std::path::Path, class: &str, topics: &str) -> String {
    format!(
        "[[stage]]\nname = \"{name}\"\nplugin = \"{}\"\nconfig = {{ script = \"{}\", class = \"{class}\" }}\n{topics}\n",
        bridge().display(),
        script.display()
    )
}

#[test]
fn the_librarys_example_pipeline_delivers_100_of_100_with_ppm_200_under_the_supervisor() {
    if !cluster_available() {
        return;
    }
    let (one, two, three) = (unique("py_one"), unique("py_two"), unique("py_three"));
    let script = seed_pipeline_script();
    let toml = format!(
        "[pipeline]\nname = \"{}\"\n\n{}{}{}",
        unique("py_example"),
        python_stage_toml(
            "one",
            &script,
            "StageOne",
            &format!("output_topic = \"{one}\"")
        ),
        python_stage_toml(
            "two",
            &script,
            "StageTwo",
            &format!(
                "input_topic = \"{one}\"\noutput_topic = \"{two}\"\ngroup_id = \"{}\"",
                unique("stage_two_g1")
            )
        ),
        python_stage_toml(
            "three",
            &script,
            "StageThree",
            &format!(
                "input_topic = \"{two}\"\noutput_topic = \"{three}\"\ngroup_id = \"{}\"",
                unique("stage_three_g1")
            )
        ),
    );
    let mut run = PipelineRun::start(&toml);
    let records = consume_avro(&three, 100, 120);
    assert_eq!(ids_of(&records), post_ids(100), "{}", run.log_text());
    for r in &records {
        assert_eq!(r.value["ppm"], 200.0, "{r:?}");
        assert_eq!(r.key.as_deref(), r.value["postid"].as_str(), "key kept");
    }

    // `pipeline status` shows each Python stage as its class and its script's sha256.
    let status = run.wait_running(Duration::from_secs(30));
    let sha = sha256(&script);
    for (stage, class) in [
        ("one", "StageOne"),
        ("two", "StageTwo"),
        ("three", "StageThree"),
    ] {
        let process = &status["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == stage)
            .unwrap()["processes"][0];
        assert_eq!(process["plugin_name"], class, "{status}");
        assert_eq!(process["version"], sha.as_str(), "{status}");
    }
    let printed = std::process::Command::new(e2e_tests::stage_host())
        .args(["pipeline", "status"])
        .arg(&run.file)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.contains(&format!("StageTwo {sha}")),
        "status names the class and the script's sha256:\n{printed}"
    );
    // print() in the stages went to the stage's log.
    assert_eq!(
        run.terminate(Duration::from_secs(60)),
        0,
        "{}",
        run.log_text()
    );
}

/// Runs a three-stage chain as separate processes, source last, and returns what reached
/// the last topic.
fn run_chain(
    one: (&[&str], String),
    two: (&[&str], String),
    three: (&[&str], String),
) -> Vec<e2e_tests::ConsumedRecord> {
    let (t1, t2, t3) = (unique("mix_one"), unique("mix_two"), unique("mix_three"));
    let (g2, g3) = (unique("mix_g2"), unique("mix_g3"));
    let with = |base: &[&str], config: &str, extra: Vec<&str>| -> Vec<String> {
        let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        args.extend(["--config-json".to_string(), config.to_string()]);
        args.extend(extra.into_iter().map(str::to_string));
        args
    };
    let three_args = with(
        three.0,
        &three.1,
        vec![
            "--input-topic",
            &t2,
            "--output-topic",
            &t3,
            "--group-id",
            &g3,
        ],
    );
    let two_args = with(
        two.0,
        &two.1,
        vec![
            "--input-topic",
            &t1,
            "--output-topic",
            &t2,
            "--group-id",
            &g2,
        ],
    );
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let stage_three = StageProcess::start(&refs(&three_args));
    let stage_two = StageProcess::start(&refs(&two_args));
    let one_args = with(one.0, &one.1, vec!["--output-topic", &t1]);
    let source = run_stage_host(&refs(&one_args), Duration::from_secs(120));
    assert_eq!(source.code(), 0, "source:\n{}", source.stderr);
    let records = consume_avro(&t3, 100, 120);
    let done_two = stage_two.terminate(Duration::from_secs(30));
    let done_three = stage_three.terminate(Duration::from_secs(30));
    assert_eq!(done_two.code(), 0, "{}", done_two.stderr);
    assert_eq!(done_three.code(), 0, "{}", done_three.stderr);
    records
}

#[test]
fn python_and_rust_stages_mix_in_both_orders() {
    if !cluster_available() {
        return;
    }
    let bridge = bridge();
    let bridge = bridge.to_str().unwrap();
    let rust = |name: &str| e2e_tests::plugin(name).to_str().unwrap().to_string();
    let (rust_one, rust_two, rust_three) =
        (rust("stage-one"), rust("stage-two"), rust("stage-three"));
    let app = |stage: &str, class: &str| config(&seed_app(stage), class);

    // Rust source, the library's StageTwo, Rust stage three.
    let records = run_chain(
        (
            &["--plugin", &rust_one],
            r#"{"records": 100, "rate_per_second": 0}"#.into(),
        ),
        (&["--plugin", bridge], app("stage_two", "StageTwo")),
        (&["--plugin", &rust_three], "{}".into()),
    );
    assert_eq!(ids_of(&records), post_ids(100));
    assert!(
        records.iter().all(|r| r.value["ppm"] == 200.0),
        "{records:?}"
    );

    // The library's StageOne, Rust stage two, the library's StageThree.
    let records = run_chain(
        (&["--plugin", bridge], app("stage_one", "StageOne")),
        (&["--plugin", &rust_two], r#"{"ppm": 150}"#.into()),
        (&["--plugin", bridge], app("stage_three", "StageThree")),
    );
    assert_eq!(ids_of(&records), post_ids(100));
    assert!(
        records.iter().all(|r| r.value["ppm"] == 200.0),
        "{records:?}"
    );
}

/// Runs `class` of `script` over posts 0..n, stopping it once `expected` outputs arrived.
fn run_over_posts(
    script: &std::path::Path,
    class: &str,
    n: u32,
    expected: usize,
    extra: &[&str],
) -> (
    Vec<e2e_tests::ConsumedRecord>,
    e2e_tests::Finished,
    String,
    String,
) {
    let (input, output, group) = (unique("py_in"), unique("py_out"), unique("py_g"));
    e2e_tests::create_topic(&input, 1);
    produce_posts(&input, 0, n);
    let bridge = bridge();
    let config = config(script, class);
    let mut args = stage_args(&bridge, &input, &output, &group);
    args.extend(["--config-json", &config]);
    args.extend(extra);
    let stage = StageProcess::start(&args);
    let records = consume_avro(&output, expected, 90);
    (
        records,
        stage.terminate(Duration::from_secs(30)),
        input,
        group,
    )
}

#[test]
fn standard_library_c_extensions_import_in_a_stage() {
    if !cluster_available() {
        return;
    }
    let (records, done, _, _) = run_over_posts(
        &test_script("native_imports.py"),
        "NativeScored",
        10,
        10,
        &[],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let mut ppm: Vec<f64> = records
        .iter()
        .map(|r| r.value["ppm"].as_f64().unwrap())
        .collect();
    ppm.sort_by(f64::total_cmp);
    assert_eq!(ppm, (0..10).map(|i| f64::from(i * 2)).collect::<Vec<_>>());
}

#[test]
fn a_third_party_package_with_native_code_imports_from_the_stages_venv() {
    if !cluster_available() {
        return;
    }
    let venv = venv_with_native_package();
    let (input, output, group) = (unique("py_in"), unique("py_out"), unique("py_g"));
    e2e_tests::create_topic(&input, 1);
    produce_posts(&input, 0, 5);
    let bridge = bridge();
    let config = serde_json::json!({
        "script": test_script("third_party.py"),
        "class": "Packed",
        "venv": venv,
    })
    .to_string();
    let mut args = stage_args(&bridge, &input, &output, &group);
    args.extend(["--config-json", &config]);
    let stage = StageProcess::start(&args);
    let records = consume_avro(&output, 5, 90);
    assert_eq!(ids_of(&records), post_ids(5));
    assert!(records.iter().all(|r| r.value["ppm"] == 7.0));
    assert_eq!(stage.terminate(Duration::from_secs(30)).code(), 0);
}

#[test]
fn failed_records_go_to_the_dead_letter_topic_with_the_exception_or_the_field() {
    if !cluster_available() {
        return;
    }
    let dlq = unique("py_dlq");
    // Posts 0..20: x3 raise, x5 return a mistyped field, x6 miss a field (6 failures), x7
    // return None, x9 return two outputs, the rest one: 14 outputs.
    let (records, done, input, group) = run_over_posts(
        &test_script("stages.py"),
        "Faulty",
        20,
        14,
        &["--on-error", "dead-letter", "--dead-letter-topic", &dlq],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let mut outputs: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *outputs
            .entry(r.value["postid"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..20u32)
        .filter(|i| ![3, 5, 6, 7].contains(&(i % 10)))
        .map(|i| (format!("postid_{i}"), if i % 10 == 9 { 2 } else { 1 }))
        .collect();
    assert_eq!(outputs, expected);

    let dead = consume_raw(&dlq, 6, 60);
    let mut by_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    for record in &dead {
        let headers = &record["headers"];
        assert_eq!(headers["stage.name"], "Faulty");
        assert_eq!(
            headers["stage.plugin.version"],
            sha256(&test_script("stages.py")).as_str()
        );
        let kind = headers["stage.error.kind"].as_str().unwrap().to_string();
        let message = headers["stage.error.message"].as_str().unwrap().to_string();
        *by_kind.entry((kind, message)).or_default() += 1;
    }
    let keys: Vec<(String, String)> = by_kind.keys().cloned().collect();
    assert!(
        keys.iter()
            .any(|(k, m)| k == "transform" && m == "ValueError: post 3 is cursed"),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|(k, m)| k == "transform" && m == "ValueError: post 13 is cursed"),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|(k, m)| k == "encode" && m == "field `ppm`: expected a float, got str"),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|(k, m)| k == "encode"
            && m == "field `postid`: missing (and the schema gives no default)"),
        "{keys:?}"
    );
    assert_eq!(by_kind.values().sum::<usize>(), 6, "{by_kind:?}");
    // Every input is done: committed past all 20.
    assert_eq!(committed(&input, &group).values().sum::<i64>(), 20);
}

#[test]
fn exactly_once_with_a_python_stage_reads_every_record_once() {
    if !cluster_available() {
        return;
    }
    let (input, output, group) = (
        unique("py_eos_in"),
        unique("py_eos_out"),
        unique("py_eos_g"),
    );
    e2e_tests::create_topic(&input, 2);
    produce_posts(&input, 0, 300);
    let bridge = bridge();
    let config = config(&seed_app("stage_two"), "StageTwo");
    let mut args = stage_args(&bridge, &input, &output, &group);
    args.extend(["--config-json", &config, "--exactly-once"]);
    // Killed with SIGKILL mid-stream and restarted: the transaction it left open is aborted.
    let first = StageProcess::start(&args);
    let _ = consume_avro(&output, 1, 60);
    e2e_tests::signal(first.pid(), "KILL");
    drop(first);
    let second = StageProcess::start(&args);
    let records = consume_avro(&output, 300, 120);
    assert_eq!(ids_of(&records), post_ids(300));
    assert_eq!(records.len(), 300, "read_committed sees each record once");
    assert_eq!(second.terminate(Duration::from_secs(30)).code(), 0);
    assert_eq!(committed(&input, &group).values().sum::<i64>(), 300);
}

#[test]
fn a_hanging_transform_is_ended_by_the_watchdog() {
    if !cluster_available() {
        return;
    }
    let (input, output, group) = (unique("py_hang_in"), unique("py_hang_out"), unique("py_g"));
    e2e_tests::create_topic(&input, 1);
    produce_posts(&input, 0, 10);
    let bridge = bridge();
    let config = config(&test_script("stages.py"), "Hanging");
    let mut args = stage_args(&bridge, &input, &output, &group);
    args.extend([
        "--config-json",
        &config,
        "--batch-timeout-secs",
        "3",
        "--batch-size",
        "1",
    ]);
    let done = StageProcess::start(&args).wait(Duration::from_secs(60));
    assert_ne!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stderr.contains("transform of post 5 hangs"),
        "{}",
        done.stderr
    );
    // Posts before the hanging one were produced and committed; post 5 was not.
    let committed: i64 = committed(&input, &group).values().sum();
    assert!(
        committed <= 5,
        "committed {committed} past the hanging record"
    );
    let records = consume_avro(&output, 0, 10);
    assert!(ids_of(&records).is_subset(&post_ids(5)), "{records:?}");
}

#[test]
fn sigterm_during_a_long_transform_finishes_the_batch_and_commits() {
    if !cluster_available() {
        return;
    }
    let (input, output, group) = (unique("py_term_in"), unique("py_term_out"), unique("py_g"));
    e2e_tests::create_topic(&input, 1);
    produce_posts(&input, 0, 5);
    let bridge = bridge();
    let config = config(&test_script("stages.py"), "Slow");
    let mut args = stage_args(&bridge, &input, &output, &group);
    args.extend(["--config-json", &config]);
    // The stage leaves a marker once the slow transform runs; the test stops it then.
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("slow");
    std::env::set_var("PY_STAGE_SLOW_MARKER", &marker);
    let stage = StageProcess::start(&args);
    e2e_tests::wait_for(
        "the slow transform to start",
        Duration::from_secs(60),
        || marker.exists().then_some(()).ok_or("no marker yet"),
    );
    e2e_tests::signal(stage.pid(), "TERM");
    let done = stage.wait(Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stderr.contains("slow transform finished"),
        "{}",
        done.stderr
    );
    // The batch in hand was finished, produced and committed.
    let records = consume_avro(&output, 5, 30);
    assert_eq!(ids_of(&records), post_ids(5));
    assert_eq!(committed(&input, &group).values().sum::<i64>(), 5);
}

#[test]
fn a_crash_in_native_code_is_a_process_crash_the_supervisor_restarts() {
    if !cluster_available() {
        return;
    }
    let (input, output) = (unique("py_crash_in"), unique("py_crash_out"));
    e2e_tests::create_topic(&input, 1);
    let marker = tempfile::tempdir().unwrap();
    let marker = marker.path().join("crashed");
    let toml = format!(
        "[pipeline]\nname = \"{}\"\n\n{}",
        unique("py_crash"),
        python_stage_toml(
            "crashing",
            &test_script("stages.py"),
            "Crashing",
            &format!(
                "input_topic = \"{input}\"\noutput_topic = \"{output}\"\ngroup_id = \"{}\"",
                unique("py_crash_g")
            )
        )
    );
    std::env::set_var("PY_STAGE_CRASH_MARKER", &marker);
    let mut run = PipelineRun::start(&toml);
    run.wait_running(Duration::from_secs(60));
    produce_posts(&input, 0, 10);
    // At-least-once: what the crashed process produced but had not committed is produced
    // again, so read until every post id arrived, duplicates included.
    let records = pipeline_support::read_scored(&output, 10, Duration::from_secs(120));
    let ids: BTreeSet<String> = records.iter().map(|r| r.postid.clone()).collect();
    assert_eq!(ids, post_ids(10), "{}", run.log_text());
    assert!(marker.exists(), "the stage crashed");
    let status = run.status().expect("status");
    let restarts = pipeline_support::counter(&status, "crashing", "restarts");
    assert!(restarts >= 1, "{status}");
    let process = &status["stages"][0]["processes"][0];
    assert!(
        process["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("killed by signal 11")),
        "the crash was a SIGSEGV: {status}"
    );
    assert_eq!(run.terminate(Duration::from_secs(60)), 0);
}

#[test]
fn a_stopped_source_delivered_every_record_it_handed_over() {
    if !cluster_available() {
        return;
    }
    let output = unique("py_src_out");
    let bridge = bridge();
    let config = config(&test_script("stages.py"), "Counting");
    let stage = StageProcess::start(&[
        "--plugin",
        bridge.to_str().unwrap(),
        "--output-topic",
        &output,
        "--config-json",
        &config,
    ]);
    let _ = consume_avro(&output, 50, 60);
    e2e_tests::signal(stage.pid(), "TERM");
    let done = stage.wait(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let handed: BTreeSet<String> = done
        .stderr
        .lines()
        .filter_map(|l| l.split("handed ").nth(1))
        .map(str::to_string)
        .collect();
    assert!(handed.len() >= 50, "{}", done.stderr);
    let delivered = ids_of(&consume_avro(&output, 0, 10));
    let missing: Vec<&String> = handed.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "handed over but not delivered: {missing:?}"
    );
}

#[test]
fn new_python_scaffolds_a_stage_the_harness_runs_without_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let stage_dir = dir.path().join("word-count");
    let created = e2e_tests::stage_host_output(&[
        "new",
        "word-count",
        "--python",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let bridge = bridge();
    let stage_config = config(&stage_dir.join("stage.py"), "WordCount");
    let ran = e2e_tests::stage_host_output(&[
        "harness",
        "--plugin",
        bridge.to_str().unwrap(),
        "--config-json",
        &stage_config,
        "--input",
        stage_dir.join("records.json").to_str().unwrap(),
        "--input-schema",
        stage_dir.join("schema/input.avsc").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["value"]["length"], 5, "{stdout}");
    assert_eq!(lines[1]["value"]["text"], "world", "{stdout}");

    // A scaffolded source, run by the harness for ten records.
    let source_dir = dir.path().join("ticks");
    let created = e2e_tests::stage_host_output(&[
        "new",
        "ticks",
        "--python",
        "--source",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let config = config(&source_dir.join("stage.py"), "Ticks");
    let ran = e2e_tests::stage_host_output(&[
        "harness",
        "--plugin",
        bridge.to_str().unwrap(),
        "--config-json",
        &config,
        "--max-records",
        "10",
    ]);
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(stdout.lines().count(), 10, "{stdout}");
}

#[test]
fn the_harness_runs_the_librarys_stage_two_on_records_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("posts.json");
    std::fs::write(
        &records,
        r#"[{"postid": "postid_1", "title": "a"}, {"postid": "postid_2", "title": "b"}]"#,
    )
    .unwrap();
    let bridge = bridge();
    let config = config(&seed_pipeline_script(), "StageTwo");
    let schema = e2e_tests::schema("stage_one.json");
    let ran = e2e_tests::stage_host_output(&[
        "harness",
        "--plugin",
        bridge.to_str().unwrap(),
        "--config-json",
        &config,
        "--input",
        records.to_str().unwrap(),
        "--input-schema",
        schema.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{stdout}\n{stderr}");
    let values: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["value"].clone())
        .collect();
    assert_eq!(
        values,
        vec![
            serde_json::json!({"postid": "postid_1", "ppm": 100.0}),
            serde_json::json!({"postid": "postid_2", "ppm": 100.0})
        ]
    );
    // The stage's print() went to the log.
    assert!(stderr.contains("stage two:"), "{stderr}");
}

#[test]
fn a_hot_swap_to_a_new_version_of_the_script_under_load_loses_no_record() {
    if !cluster_available() {
        return;
    }
    let (one, two) = (unique("py_swap_one"), unique("py_swap_two"));
    // 30 s of input at 300/s: the source is still producing when the swap is done, also on
    // a loaded machine (the swap waits for the new process to join and the old to drain).
    let records = 9000;
    let script = test_script("stages.py");
    let toml = format!(
        "[pipeline]\nname = \"{}\"\n[pipeline.swap]\nprobation_secs = 3.0\n\n\
         [[stage]]\nname = \"one\"\nplugin = \"{}\"\nconfig = {{ records = {records}, rate_per_second = 300 }}\noutput_topic = \"{one}\"\n\n{}",
        unique("py_swap"),
        e2e_tests::plugin("stage-one").display(),
        python_stage_toml(
            "two",
            &script,
            "Scored",
            &format!(
                "input_topic = \"{one}\"\noutput_topic = \"{two}\"\ngroup_id = \"{}\"",
                unique("py_swap_g")
            )
        ),
    );
    // Version 2 of the script (written below, elsewhere) finds the schemas through the
    // environment the supervisor's children inherit.
    std::env::set_var("PY_STAGE_SCHEMAS", e2e_tests::repo_root().join("schemas"));
    let run = PipelineRun::start(&toml);
    run.wait_running(Duration::from_secs(90));
    run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        pipeline_support::counter(s, "two", "records_in") > 100
    });
    // Version 2 of the script: a new file, PPM 150.
    let v2 = run.dir().join("stages_v2.py");
    let text = std::fs::read_to_string(&script)
        .unwrap()
        .replace("PPM = 100", "PPM = 150");
    std::fs::write(&v2, text).unwrap();
    let (code, answer) = run.swap("two", &bridge(), Some(&config(&v2, "Scored")));
    let swapped_at = pipeline_support::now_ms();
    assert_eq!(code, 0, "swap failed: {answer}\n{}", run.log_text());
    let status = run.status().expect("status");
    let process = &status["stages"][1]["processes"][0];
    assert_eq!(process["version"], sha256(&v2).as_str(), "{status}");

    let out = pipeline_support::read_scored(&two, records as usize, Duration::from_secs(180));
    let seen: BTreeSet<&str> = out.iter().map(|r| r.postid.as_str()).collect();
    let lost: Vec<String> = post_ids(records)
        .into_iter()
        .filter(|id| !seen.contains(id.as_str()))
        .collect();
    assert_eq!(lost, Vec::<String>::new(), "records lost");
    let after: Vec<_> = out.iter().filter(|r| r.timestamp_ms > swapped_at).collect();
    assert!(
        !after.is_empty(),
        "the source was still producing after the swap"
    );
    assert!(
        after.iter().all(|r| r.ppm == 150.0),
        "after the swap: the new script"
    );
    assert!(
        out.iter().any(|r| r.ppm == 100.0),
        "the old script served before"
    );
}

#[test]
fn a_canary_of_a_python_stage_passes_for_the_same_script_and_fails_for_another() {
    if !cluster_available() {
        return;
    }
    let (one, two) = (unique("py_canary_one"), unique("py_canary_two"));
    let script = test_script("stages.py");
    // The source keeps producing through both canaries (60 s at 800/s): a canary starts at
    // the live group's committed offsets.
    let toml = format!(
        "[pipeline]\nname = \"{}\"\n\n\
         [[stage]]\nname = \"one\"\nplugin = \"{}\"\nconfig = {{ records = 48000, rate_per_second = 800 }}\noutput_topic = \"{one}\"\n\n{}",
        unique("py_canary"),
        e2e_tests::plugin("stage-one").display(),
        python_stage_toml(
            "two",
            &script,
            "Scored",
            &format!(
                "input_topic = \"{one}\"\noutput_topic = \"{two}\"\ngroup_id = \"{}\"",
                unique("py_canary_g")
            )
        ),
    );
    std::env::set_var("PY_STAGE_SCHEMAS", e2e_tests::repo_root().join("schemas"));
    let run = PipelineRun::start(&toml);
    run.wait_running(Duration::from_secs(90));
    run.wait_status("stage two processing", Duration::from_secs(60), |s| {
        pipeline_support::counter(s, "two", "records_in") > 500
    });
    let canary = |config: &str| {
        let output = std::process::Command::new(e2e_tests::stage_host())
            .args(["pipeline", "canary", "-f"])
            .arg(&run.file)
            .arg("two")
            .arg(bridge())
            .args(["--config-json", config, "--records", "1000", "--secs", "60"])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    let (code, report) = canary(&config(&script, "Scored"));
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("PASS"), "{report}");

    let v2 = run.dir().join("stages_v2.py");
    let text = std::fs::read_to_string(&script)
        .unwrap()
        .replace("PPM = 100", "PPM = 150");
    std::fs::write(&v2, text).unwrap();
    let (code, report) = canary(&config(&v2, "Scored"));
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("FAIL"), "{report}");
    assert!(
        report.contains("\"ppm\":100.0") && report.contains("\"ppm\":150.0"),
        "the differences side by side: {report}"
    );
}
