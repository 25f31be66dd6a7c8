//! A private cluster of three brokers and three controllers (`PrivateCluster`), laid out and
//! configured as production runs one (replication factor 3, min ISR 2), taken apart one node
//! at a time the ways production loses nodes: the kit names who leads and who coordinates,
//! and what it reports is what the cluster does (a new leader from the ISR, the ISR shrinking
//! and recovering, writes refused below min ISR, a new controller, coordinators moving).
//! Records are written and counted by the independent client (confluent-kafka) and Kafka's
//! own tools.
//!
//! And a stage on it creates its output and dead-letter topics with the operator's
//! replication factor (checked with Kafka's own `kafka-topics --describe`), and refuses to
//! start, before creating anything, with the plugin's replication factor of 1, which min ISR 2
//! would never let it write to.
//!
//! Each test starts six JVMs of its own (about a minute, 1.4 GB).

use e2e_tests::private_cluster::{ClusterOptions, PrivateCluster};
use e2e_tests::*;
use std::time::{Duration, Instant};

/// Long enough for a fenced broker's partitions to get new leaders (the controllers fence a
/// broker 9 s after its last heartbeat) on two busy cores.
const ELECTION: Duration = Duration::from_secs(120);
/// Long enough for a restarted broker to catch up on every partition it holds.
const RECOVERY: Duration = Duration::from_secs(300);

/// Prints how long into the test a step ended (shown with `--nocapture`, and for a failing
/// test): how long each fault takes to settle on this machine.
fn step(started: Instant, what: &str) {
    eprintln!("[{:7.1} s] {what}", started.elapsed().as_secs_f64());
}

fn sorted(mut ids: Vec<i32>) -> Vec<i32> {
    ids.sort_unstable();
    ids
}

/// Checks that every one of `count` posts (`postid_0..count`) is in `topic` exactly once, read
/// by confluent-kafka.
fn assert_each_post_once(env: &[(&str, &str)], topic: &str, count: u32) {
    let records = consume_avro_with(env, topic, count as usize, 180);
    let counts = post_counts(&records);
    assert_eq!(counts.len(), count as usize, "distinct posts in {topic}");
    assert!(
        counts.values().all(|&n| n == 1),
        "duplicates in {topic}: {:?}",
        counts.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );
}

#[test]
fn nodes_killed_paused_and_restarted_move_leaders_isr_controller_and_coordinators() {
    if !cluster_available() {
        return;
    }
    let started = Instant::now();
    let mut cluster = PrivateCluster::start_with(ClusterOptions {
        replica_lag_time_max: Some(Duration::from_secs(3)),
    });
    step(started, "cluster serving");
    let bootstrap = cluster.bootstrap();
    let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
    assert_eq!(cluster.broker_ids(), [1, 2, 3]);
    assert_eq!(cluster.controller_ids(), [101, 102, 103]);
    assert_eq!(cluster.live_brokers().unwrap(), [1, 2, 3]);

    let topic = unique("three_posts");
    cluster.create_topic(&topic, 3);
    assert_eq!(
        cluster.replication_factor(&topic).unwrap(),
        3,
        "the cluster's default"
    );
    produce_posts_with(&env, &topic, 0, 1000);

    // SIGKILL of a partition's leader: a replica from the ISR takes over; writes go on with
    // two in sync; restarted on its data, the old leader catches up and rejoins the ISR.
    let before = wait_for("partition 0 fully in sync", ELECTION, || {
        let state = cluster.partition(&topic, 0)?;
        if state.isr.len() == 3 {
            Ok(state)
        } else {
            Err(format!("{state:?}"))
        }
    });
    let old_leader = before.leader.expect("a leader");
    cluster.kill(old_leader);
    step(
        started,
        &format!("leader {old_leader} of partition 0 killed"),
    );
    let after = wait_for("a new leader of partition 0", ELECTION, || {
        let state = cluster.partition(&topic, 0)?;
        match state.leader {
            Some(leader) if leader != old_leader && !state.isr.contains(&old_leader) => Ok(state),
            _ => Err(format!("{state:?}")),
        }
    });
    step(started, &format!("new leader: {after:?}"));
    assert!(
        before.isr.contains(&after.leader.unwrap()),
        "the new leader was in sync: {before:?} -> {after:?}"
    );
    assert!(!cluster.under_replicated().unwrap().is_empty());
    produce_posts_with(&env, &topic, 1000, 1000);
    cluster.restart(old_leader);
    step(
        started,
        &format!("broker {old_leader} restarted and registered"),
    );
    cluster.wait_until_fully_replicated(RECOVERY);
    step(started, "nothing under-replicated");
    let back = cluster.partition(&topic, 0).unwrap();
    assert_eq!(sorted(back.isr.clone()), [1, 2, 3], "{back:?}");
    // Kafka's own tool agrees that nothing is under-replicated.
    let under = cluster.tool(&[
        "topics",
        "--bootstrap-server",
        &bootstrap,
        "--describe",
        "--under-replicated-partitions",
    ]);
    assert_eq!(under.trim(), "", "kafka-topics: {under}");

    // SIGSTOP of a follower: it answers nothing, so it leaves the ISR (no records arrive
    // here, so it is the controllers fencing the silent broker after 9 s that takes it out,
    // not replica.lag.time.max.ms); after SIGCONT it catches up and is back.
    let state = cluster.partition(&topic, 1).unwrap();
    let follower = state.followers()[0];
    cluster.pause(follower);
    step(
        started,
        &format!("follower {follower} of partition 1 paused"),
    );
    wait_for("the paused follower out of the ISR", ELECTION, || {
        let state = cluster.partition(&topic, 1)?;
        if state.isr.contains(&follower) {
            Err(format!("{state:?}"))
        } else {
            Ok(())
        }
    });
    step(started, "the paused follower left the ISR");
    cluster.resume(follower);
    cluster.wait_until_fully_replicated(RECOVERY);
    step(started, "resumed, back in the ISR");

    // Both followers of a partition paused: the ISR shrinks to the leader alone, below min
    // ISR 2, and a write with acks=all is refused (NOT_ENOUGH_REPLICAS) instead of being
    // acknowledged by one copy. The controllers are separate processes, so the quorum that
    // commits the shrink is not paused with them.
    let single = unique("three_single");
    cluster.create_topic(&single, 1);
    let state = wait_for("the single partition in sync", ELECTION, || {
        let state = cluster.partition(&single, 0)?;
        if state.isr.len() == 3 {
            Ok(state)
        } else {
            Err(format!("{state:?}"))
        }
    });
    let leader = state.leader.unwrap();
    for &id in &state.followers() {
        cluster.pause(id);
    }
    step(started, &format!("both followers of {single} paused"));
    wait_for("the ISR down to the leader", ELECTION, || {
        let state = cluster.partition(&single, 0)?;
        if state.isr == [leader] {
            Ok(())
        } else {
            Err(format!("{state:?}"))
        }
    });
    step(started, &format!("ISR down to leader {leader}"));
    let refused = console_produce_one(&cluster.broker_address(leader), &single);
    assert!(
        refused.contains("NotEnoughReplicasException"),
        "a write below min ISR: {refused}"
    );
    step(started, "a write below min ISR refused");
    for &id in &state.followers() {
        cluster.resume(id);
    }
    cluster.wait_until_fully_replicated(RECOVERY);
    step(started, "both resumed, back in the ISR");

    // The active controller killed: another voter takes over, and metadata changes (a new
    // topic) go on; restarted, it catches up with the quorum.
    let active = cluster.active_controller().unwrap();
    assert!(cluster.controller_ids().contains(&active));
    cluster.kill(active);
    step(started, &format!("active controller {active} killed"));
    let next = wait_for("a new active controller", ELECTION, || {
        match cluster.active_controller()? {
            id if id != active => Ok(id),
            id => Err(format!("still {id}")),
        }
    });
    step(started, &format!("controller {next} active"));
    assert!(cluster.controller_ids().contains(&next));
    let during = unique("three_during_failover");
    cluster.create_topic(&during, 1);
    assert_eq!(cluster.replication_factor(&during).unwrap(), 3);
    cluster.restart(active);
    step(
        started,
        &format!("controller {active} restarted and caught up"),
    );

    // Coordinators: a group's (offsets committed with Kafka's own tool) and a transactional
    // id's (Kafka's producer perf test in transactions). Killing the broker of each moves it.
    let group = unique("three_group");
    cluster.tool(&[
        "consumer-groups",
        "--bootstrap-server",
        &bootstrap,
        "--reset-offsets",
        "--to-earliest",
        "--execute",
        "--group",
        &group,
        "--topic",
        &topic,
    ]);
    let transactional_id = unique("three_tx");
    cluster.tool(&[
        "producer-perf-test",
        "--topic",
        &during,
        "--num-records",
        "100",
        "--record-size",
        "10",
        "--throughput",
        "-1",
        "--bootstrap-server",
        &bootstrap,
        "--transactional-id",
        &transactional_id,
        "--transaction-duration-ms",
        "50",
    ]);
    kill_and_see_it_move(&mut cluster, started, "group", |c| {
        c.group_coordinator(&group)
    });
    kill_and_see_it_move(&mut cluster, started, "transaction", |c| {
        c.transaction_coordinator(&transactional_id)
    });

    // Through it all, every acknowledged record is there once.
    assert_each_post_once(&env, &topic, 2000);
    step(started, "2000 of 2000 records read once each");
}

/// Kills the broker that `coordinator` names, waits until it names another broker, and
/// restarts the killed one.
fn kill_and_see_it_move(
    cluster: &mut PrivateCluster,
    started: Instant,
    what: &str,
    coordinator: impl Fn(&PrivateCluster) -> Result<i32, String>,
) {
    let before = wait_for(&format!("the {what} coordinator"), ELECTION, || {
        coordinator(cluster)
    });
    assert!(cluster.broker_ids().contains(&before), "{what}: {before}");
    cluster.kill(before);
    step(started, &format!("{what} coordinator {before} killed"));
    let after = wait_for(
        &format!("the {what} coordinator to move"),
        ELECTION,
        || match coordinator(cluster)? {
            id if id != before => Ok(id),
            id => Err(format!("still {id}")),
        },
    );
    step(started, &format!("{what} coordinator moved to {after}"));
    assert!(cluster.broker_ids().contains(&after), "{what}: {after}");
    cluster.restart(before);
    cluster.wait_until_fully_replicated(RECOVERY);
    step(
        started,
        &format!("broker {before} back, nothing under-replicated"),
    );
}

/// Writes one record to partition 0 of `topic` through `broker` with Kafka's console producer
/// (acks=all, no retries: the broker's first answer is the outcome) and returns what it printed.
fn console_produce_one(broker: &str, topic: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(private_kafka::kafka_script())
        .args([
            "console-producer",
            "--bootstrap-server",
            broker,
            "--topic",
            topic,
        ])
        .args(["--command-property", "acks=all"])
        .args(["--command-property", "enable.idempotence=false"])
        .args(["--command-property", "retries=0"])
        .args(["--command-property", "delivery.timeout.ms=10000"])
        .args(["--command-property", "request.timeout.ms=5000"])
        .args(["--command-property", "linger.ms=0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kafka console-producer starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"below-min-isr\n")
        .expect("write a line");
    let output = child.wait_with_output().expect("console-producer ends");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_stage_creates_its_topics_with_the_operators_replication_factor() {
    if !cluster_available() {
        return;
    }
    let cluster = PrivateCluster::start();
    let bootstrap = cluster.bootstrap();
    let env = [("BOOTSTRAP_SERVERS", bootstrap.as_str())];
    let input = unique("rf_in");
    let output = unique("rf_out");
    let group = unique("rf_g");
    cluster.create_topic(&input, 2);
    produce_posts_with(&env, &input, 0, 200);
    let plugin = plugin("stage-two");
    let mut args = stage_args(&plugin, &input, &output, &group);
    args.extend_from_slice(&[
        "--bootstrap-servers",
        &bootstrap,
        "--on-error",
        "dead-letter",
    ]);

    // The plugin declares 1 replica; min ISR 2 would refuse every write. Nothing is created.
    let refused = run_stage_host(&args, Duration::from_secs(120));
    refused.assert_failed_with(
        2,
        &[
            &format!("the output topic {output} has 1 replica but min.insync.replicas=2"),
            "--replication-factor 2 or more",
        ],
    );
    let topics = cluster.tool(&["topics", "--bootstrap-server", &bootstrap, "--list"]);
    assert!(
        !topics.lines().any(|t| t.starts_with(&output)),
        "no topic was created: {topics}"
    );

    // With the operator's replication factor the stage creates its output and dead-letter
    // topics with 3 replicas and writes through them.
    args.extend_from_slice(&["--replication-factor", "3"]);
    let stage = StageProcess::start(&args);
    assert_each_post_once(&env, &output, 200);
    let done = stage.terminate(Duration::from_secs(60));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    for topic in [output.clone(), format!("{output}.dlq")] {
        let described = cluster.tool(&[
            "topics",
            "--bootstrap-server",
            &bootstrap,
            "--describe",
            "--topic",
            &topic,
        ]);
        assert!(
            described.contains("ReplicationFactor: 3"),
            "kafka-topics --describe {topic}:\n{described}"
        );
        assert_eq!(cluster.replication_factor(&topic).unwrap(), 3);
    }
}
