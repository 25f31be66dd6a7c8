//! Wire compatibility with an independent client, both ways: records written by Python
//! confluent-kafka's AvroSerializer are consumed by a Rust stage, and the stage's output is
//! read by Python's AvroDeserializer.

use e2e_tests::*;
use std::time::Duration;

#[test]
fn python_serialized_records_flow_through_a_rust_stage_and_back() {
    if !cluster_available() {
        return;
    }
    let input = unique("wire_in");
    let output = unique("wire_out");
    let group = unique("wire_g");
    create_topic(&input, 3);
    produce_posts(&input, 1000, 50);

    let stage_two_plugin = plugin("stage-two");
    let mut args = stage_args(&stage_two_plugin, &input, &output, &group);
    args.extend_from_slice(&["--config-json", r#"{"ppm": 42.5}"#]);
    let stage = StageProcess::start(&args);
    let records = consume_avro(&output, 50, 90);
    let finished = stage.terminate(Duration::from_secs(30));
    assert_eq!(finished.code(), 0, "{}", finished.stderr);

    let mut ids: Vec<u32> = records
        .iter()
        .map(|r| {
            assert_eq!(r.value["ppm"], 42.5);
            assert_eq!(r.key.as_deref(), r.value["postid"].as_str());
            r.value["postid"].as_str().unwrap()["postid_".len()..]
                .parse()
                .unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1000..1050).collect::<Vec<_>>());
}
