//! The guards against a stage that sits still in silence: a stage without an assignment says
//! so, naming its group's state and members; a consumer with records waiting that consumes
//! nothing rejoins its group, and then stops with a non-zero exit.

use e2e_tests::*;
use std::time::Duration;

#[test]
fn a_stage_left_without_partitions_warns_with_the_groups_state_and_members() {
    if !cluster_available() {
        return;
    }
    let input = unique("unassigned_in");
    let output = unique("unassigned_out");
    let group = unique("unassigned_g");
    create_topic(&input, 1);
    let plugin = plugin("stage-two");
    let mut args = stage_args(&plugin, &input, &output, &group);
    args.extend_from_slice(&["--no-assignment-warn-secs", "2"]);
    // Two replicas, one partition: one of them gets nothing.
    let first = StageProcess::start(&args);
    let second = StageProcess::start(&args);
    std::thread::sleep(Duration::from_secs(8));
    let logs = [
        first.terminate(Duration::from_secs(30)),
        second.terminate(Duration::from_secs(30)),
    ];
    for done in &logs {
        assert_eq!(done.code(), 0, "{}", done.stderr);
    }
    let warnings: Vec<&str> = logs
        .iter()
        .flat_map(|done| done.stderr.lines())
        .filter(|l| l.contains("WARN") && l.contains("no partition of"))
        .collect();
    assert!(
        !warnings.is_empty(),
        "no warning from the replica without a partition:\n{}\n{}",
        logs[0].stderr,
        logs[1].stderr
    );
    let warning = warnings[0];
    for needle in [
        input.as_str(),
        group.as_str(),
        "the group is Stable with 2 member(s)",
        "the topic has 1 partition(s)",
    ] {
        assert!(
            warning.contains(needle),
            "{needle:?} missing from: {warning}"
        );
    }
}

#[test]
fn a_stalled_consumer_rejoins_then_stops_with_an_error() {
    if !cluster_available() {
        return;
    }
    let input = unique("stall_in");
    let output = unique("stall_out");
    let group = unique("stall_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 2000);
    // A consumer that may receive at most 1512 bytes per response, while the broker answers a
    // fetch with at least one whole producer batch (here tens of kilobytes): every fetch
    // fails and is retried, the group is fine, the records wait. A misconfiguration that
    // leaves a stage holding its partition and consuming nothing, for ever.
    let plugin = plugin("stage-two");
    let mut args = stage_args(&plugin, &input, &output, &group);
    args.extend_from_slice(&[
        "--stall-timeout-secs",
        "3",
        "-X",
        "receive.message.max.bytes=1512",
        "-X",
        "fetch.max.bytes=1000",
        "-X",
        "max.partition.fetch.bytes=1000",
        "-X",
        "message.max.bytes=1000",
    ]);
    let done = StageProcess::start(&args).wait(Duration::from_secs(90));
    assert!(
        done.stderr.lines().any(|l| l.contains("WARN")
            && l.contains("consumer stalled")
            && l.contains("records of")
            && l.contains("rejoining group")),
        "no rejoin warning:\n{}",
        done.stderr
    );
    let errors: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| l.contains("ERROR stage_host"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", done.stderr);
    for needle in ["consumer stalled", group.as_str(), input.as_str()] {
        assert!(
            errors[0].contains(needle),
            "{needle:?} missing: {}",
            errors[0]
        );
    }
    assert_eq!(done.code(), 1, "{}", done.stderr);
}
