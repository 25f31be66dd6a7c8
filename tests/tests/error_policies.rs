//! The `skip` and `dead-letter` error policies: one bad record does not stop the stage, every
//! good record is delivered, and the bad one is either counted or written, untouched and
//! annotated, to the dead-letter topic.

use e2e_tests::*;
use std::time::Duration;

const NOT_AVRO: &[u8] = b"not avro at all";

/// Three good records, an unframed one at offset 3, three more good ones; runs stage two with
/// `policy` until all six outputs arrived, then stops it. Returns (output topic, group, input).
fn run_with_policy(policy: &str, extra: &[&str]) -> (String, String, String) {
    let input = unique("policy_in");
    let output = unique("policy_out");
    let group = unique("policy_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 3);
    produce_raw(&input, "bad-key", NOT_AVRO);
    produce_posts(&input, 4, 3);
    let plugin = plugin("stage-two");
    let mut args = stage_args(&plugin, &input, &output, &group);
    args.extend_from_slice(&["--on-error", policy]);
    args.extend_from_slice(extra);
    let stage = StageProcess::start(&args);
    let records = consume_avro(&output, 6, 90);
    let done = stage.terminate(Duration::from_secs(30));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r.value["postid"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["postid_0", "postid_1", "postid_2", "postid_4", "postid_5", "postid_6"]
    );
    assert!(done.stderr.contains("decode error at"), "{}", done.stderr);
    assert_eq!(
        committed(&input, &group).get(&0),
        Some(&7),
        "all 7 committed"
    );
    (output, group, input)
}

#[test]
fn skip_counts_the_bad_record_and_delivers_the_rest() {
    if !cluster_available() {
        return;
    }
    run_with_policy("skip", &[]);
}

#[test]
fn dead_letter_writes_the_original_record_with_what_failed() {
    if !cluster_available() {
        return;
    }
    let dlq = unique("policy_dlq");
    let (_, _, input) = run_with_policy("dead-letter", &["--dead-letter-topic", &dlq]);
    let dead = consume_raw(&dlq, 1, 60);
    let record = &dead[0];
    assert_eq!(record["key"], "bad-key");
    let hex: String = NOT_AVRO.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(record["value_hex"], hex, "the original bytes, untouched");
    let headers = &record["headers"];
    assert_eq!(headers["stage.name"], "stage-two");
    assert_eq!(headers["stage.plugin.version"], "0.1.0");
    assert_eq!(headers["stage.error.kind"], "decode");
    assert_eq!(headers["stage.source.topic"], input.as_str());
    assert_eq!(headers["stage.source.partition"], "0");
    assert_eq!(headers["stage.source.offset"], "3");
    assert!(headers["stage.error.message"]
        .as_str()
        .unwrap()
        .contains("Confluent magic byte"));
    assert!(headers["stage.failed.at.ms"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
}
