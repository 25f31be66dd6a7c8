//! The Python library's example pipeline, as three `stage-host` processes: every one of the
//! 100 source records arrives in stage three's output with ppm 200, read back by an
//! independent client (confluent-kafka's AvroDeserializer).

use e2e_tests::*;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn three_stages_deliver_every_record_with_ppm_200() {
    if !cluster_available() {
        return;
    }
    let one = unique("example_one");
    let two = unique("example_two");
    let three = unique("example_three");
    let group_two = unique("stage_two_g1");
    let group_three = unique("stage_three_g1");
    let stage_two_plugin = plugin("stage-two");
    let stage_three_plugin = plugin("stage-three");
    let stage_one_plugin = plugin("stage-one");

    let stage_three = StageProcess::start(&[
        "--plugin",
        stage_three_plugin.to_str().unwrap(),
        "--input-topic",
        &two,
        "--output-topic",
        &three,
        "--group-id",
        &group_three,
    ]);
    let stage_two = StageProcess::start(&[
        "--plugin",
        stage_two_plugin.to_str().unwrap(),
        "--input-topic",
        &one,
        "--output-topic",
        &two,
        "--group-id",
        &group_two,
    ]);
    let source = run_stage_host(
        &[
            "--plugin",
            stage_one_plugin.to_str().unwrap(),
            "--output-topic",
            &one,
            "--config-json",
            r#"{"records": 100, "rate_per_second": 0}"#,
        ],
        Duration::from_secs(60),
    );
    assert_eq!(source.code(), 0, "source failed:\n{}", source.stderr);

    let records = consume_avro(&three, 100, 90);
    let ids: BTreeSet<String> = records
        .iter()
        .map(|r| r.value["postid"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = (0..100).map(|i| format!("postid_{i}")).collect();
    assert_eq!(ids, expected);
    for r in &records {
        assert_eq!(r.value["ppm"], 200.0, "{r:?}");
        assert_eq!(
            r.key.as_deref(),
            r.value["postid"].as_str(),
            "key preserved"
        );
    }

    let two_done = stage_two.terminate(Duration::from_secs(30));
    let three_done = stage_three.terminate(Duration::from_secs(30));
    assert_eq!(two_done.code(), 0, "stage two:\n{}", two_done.stderr);
    assert_eq!(three_done.code(), 0, "stage three:\n{}", three_done.stderr);
    // Stopping drained and committed everything that was consumed.
    let committed_two: i64 = committed(&one, &group_two).values().sum();
    assert_eq!(committed_two, 100, "stage two's committed offsets");
    let committed_three: i64 = committed(&two, &group_three).values().sum();
    assert_eq!(committed_three, 100, "stage three's committed offsets");
}
