//! The stage loop itself, on librdkafka's mock cluster (`rdkafka::mocking::MockCluster`: a
//! broker inside the test process, speaking the Kafka protocol to the real consumer and
//! producer). What the loop promises that no part's unit test can show: every input becomes
//! one output or one routed failure, offsets are committed only past what was produced and
//! acknowledged, and a failure under `fail` stops it with the commit before the failing
//! record. The writer schemas come from a fixed map instead of a registry; Kafka is not
//! replaced, only run in-process. What needs a real broker (transactions across restarts,
//! ACLs, broker faults) is tested against Apache Kafka in `tests/`.

use super::batch_properties::{value_with_title, OneSchema, Probe};
use super::stage::{StageOptions, StageRunner, MAX_IN_FLIGHT_BATCHES};
use super::{OutputTopic, RunError};
use crate::observe::Observer;
use crate::policy::ErrorPolicy;
use crate::protocol::Counters;
use crate::settings::Connection;
use crate::shutdown::Shutdown;
use plugin_api::Stage;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const INPUT: &str = "posts";
const OUTPUT: &str = "scored";
const GROUP: &str = "scorers";
/// The registry id the loop frames outputs with.
const OUTPUT_ID: u32 = 7;

fn connection(cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>) -> Connection {
    Connection {
        bootstrap_servers: cluster.bootstrap_servers(),
        // Never asked: the writer schemas come from `OneSchema`.
        schema_registry_url: "http://127.0.0.1:1".into(),
        schema_registry_auth: None,
        schema_registry_ca: None,
        rest_proxy_url: None,
        kafka_properties: vec![],
        connect_timeout_secs: 10,
    }
}

fn options(policy: ErrorPolicy, batch_size: usize) -> StageOptions {
    StageOptions {
        stage_name: "probe".into(),
        plugin_version: "0".into(),
        input_topic: INPUT.into(),
        group_id: GROUP.into(),
        input_key_framed: false,
        batch_size,
        batch_wait: Duration::from_millis(5),
        policy,
        dead_letter_topic: None,
        max_in_flight_batches: MAX_IN_FLIGHT_BATCHES,
        transaction_interval: Duration::from_millis(100),
        flush_timeout: Duration::from_secs(10),
        batch_timeout: Duration::from_secs(30),
        failure_window: 10_000,
        max_failure_ratio: 1.0,
        transactional_id: None,
        liveness: Default::default(),
        on_offset_gap: Default::default(),
        input_compacted: false,
        position_headers: false,
    }
}

/// Writes `titles` as stage-one records keyed `k<n>`, round-robin over `partitions`.
fn produce(conn: &Connection, titles: &[&str], partitions: i32) {
    let producer: BaseProducer = conn.client_config(&[]).create().unwrap();
    for (n, title) in titles.iter().enumerate() {
        let value = value_with_title(title, n);
        let key = format!("k{n}");
        producer
            .send(
                BaseRecord::to(INPUT)
                    .key(&key)
                    .payload(&value)
                    .partition(n as i32 % partitions),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// Starts the loop on its own thread.
fn start(
    conn: &Connection,
    options: StageOptions,
    shutdown: &Shutdown,
) -> JoinHandle<Result<Counters, RunError>> {
    let conn = conn.clone();
    let shutdown = shutdown.clone();
    std::thread::spawn(move || {
        let instance = plugin_api::linked::stage::<Probe>(&serde_json::json!({})).unwrap();
        let spec = Probe::spec();
        let observer = Arc::new(Observer::new(spec.kind, &spec.name, &spec.version));
        let output = OutputTopic {
            topic: OUTPUT.into(),
            value_schema_id: OUTPUT_ID,
            key_schema_id: None,
        };
        StageRunner::with_schemas(
            &conn,
            options,
            output,
            Box::new(OneSchema),
            instance,
            shutdown,
            observer,
        )?
        .run()
    })
}

/// The group's committed offset per partition (-1: none).
fn committed(conn: &Connection, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = conn.client_config(&[("group.id", GROUP)]).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(INPUT, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(
            |p| match committed.find_partition(INPUT, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// Runs the loop until its group has committed past all `total` inputs of the `partitions`
/// input partitions, then stops it; what it counted.
fn run_until_committed(
    conn: &Connection,
    options: StageOptions,
    partitions: i32,
    total: i64,
) -> Counters {
    let shutdown = Shutdown::default();
    let running = start(conn, options, &shutdown);
    wait_until("every input is committed", || {
        committed(conn, partitions).iter().sum::<i64>() == total
    });
    shutdown.request();
    running.join().unwrap().expect("the loop stops cleanly")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every record of the output topic: (key, value).
fn outputs(conn: &Connection, expected: usize) -> Vec<(String, Vec<u8>)> {
    let consumer: BaseConsumer = conn
        .client_config(&[("group.id", "reader"), ("auto.offset.reset", "earliest")])
        .create()
        .unwrap();
    consumer.subscribe(&[OUTPUT]).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // A little past `expected`, to see any extra output too.
    let quiet_after = Duration::from_secs(2);
    let mut last = Instant::now();
    while Instant::now() < deadline && (seen.len() < expected || last.elapsed() < quiet_after) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let key = String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap();
            seen.push((key, m.payload().unwrap_or_default().to_vec()));
            last = Instant::now();
        }
    }
    seen
}

fn mock_cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("the mock cluster starts");
    cluster.create_topic(INPUT, 4, 1).unwrap();
    cluster.create_topic(OUTPUT, 1, 1).unwrap();
    cluster
}

#[test]
fn every_input_becomes_one_output_and_the_group_commits_past_all_of_them() {
    let cluster = mock_cluster();
    let conn = connection(&cluster);
    let titles: Vec<&str> = vec!["fine"; 2_000];
    produce(&conn, &titles, 4);
    let counters = run_until_committed(&conn, options(ErrorPolicy::Fail, 100), 4, 2_000);
    assert_eq!((counters.records_in, counters.records_out), (2_000, 2_000));

    let out = outputs(&conn, 2_000);
    assert_eq!(out.len(), 2_000, "one output per input, no more");
    let keys: BTreeSet<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 2_000, "each input's key once");
    for (_, value) in &out {
        let (id, _) = confluent::framing::strip(value).expect("framed");
        assert_eq!(id, OUTPUT_ID);
    }
}

#[test]
fn a_failure_under_fail_stops_the_loop_with_the_commit_just_before_the_failing_batch() {
    let cluster = mock_cluster();
    let conn = connection(&cluster);
    // One partition's worth: records 0..25 fine, 25 fails, the rest fine.
    let mut titles = vec!["fine"; 50];
    titles[25] = "error";
    produce(&conn, &titles, 1);
    let shutdown = Shutdown::default();
    // Batches of 5: [0..5) .. [20..25) are produced and committed, [25..30) is not.
    let result = start(&conn, options(ErrorPolicy::Fail, 5), &shutdown)
        .join()
        .unwrap();
    match result {
        Err(RunError::RecordFailed(reason)) => {
            assert!(reason.contains("posts[0]@25"), "{reason}")
        }
        other => panic!("the loop did not stop on the failure: {other:?}"),
    }
    assert_eq!(committed(&conn, 1)[0], 25);
    let out = outputs(&conn, 25);
    assert_eq!(out.len(), 25, "nothing of the failing batch was produced");
}

#[test]
fn under_skip_failing_records_are_passed_over_and_committed_past() {
    let cluster = mock_cluster();
    let conn = connection(&cluster);
    let titles: Vec<&str> = (0..400)
        .map(|n| match n % 10 {
            3 => "error",
            7 => "panic",
            _ => "fine",
        })
        .collect();
    produce(&conn, &titles, 4);
    let counters = run_until_committed(&conn, options(ErrorPolicy::Skip, 50), 4, 400);
    assert_eq!(
        (counters.records_in, counters.records_out, counters.skipped),
        (400, 320, 80)
    );
    assert_eq!(outputs(&conn, 320).len(), 320);
}

#[test]
fn a_rewind_with_no_partition_assigned_has_nothing_to_do() {
    // After an aborted transaction whose session also timed out, the revocation has taken
    // every partition: the rewind must return (the loop then polls and is assigned again),
    // not retry librdkafka's refusal of a seek of no partitions for ever.
    use super::consumer::StageConsumer;
    use super::continuity::ContinuityAudit;
    use super::handover::HandOver;
    use crate::watchdog::Watchdog;
    use std::sync::Mutex;

    let cluster = mock_cluster();
    let conn = connection(&cluster);
    produce(&conn, &["fine"], 4);
    let observer = Arc::new(Observer::new(plugin_host::StageKind::Stage, "probe", "1.0"));
    let audit = Arc::new(Mutex::new(ContinuityAudit::new(false)));
    let handover = HandOver {
        ledger: Arc::default(),
        commits: false,
        timeout: Duration::from_secs(5),
        topic: INPUT.to_string(),
        observer: Arc::clone(&observer),
        watchdog: Watchdog::start(None),
        drained: Default::default(),
    };
    // Subscribed, never polled: nothing is assigned.
    let consumer =
        StageConsumer::subscribe(&conn, INPUT, GROUP, observer, Arc::clone(&audit), handover)
            .unwrap();
    let watchdog = Watchdog::start(None);
    // A rewind that retries ends only when a stop is requested, and then fails.
    let shutdown = Shutdown::default();
    let stopper = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            shutdown.request();
        })
    };
    let rewound =
        consumer.rewind_to_committed(&audit, Duration::from_secs(5), &shutdown, &watchdog);
    assert!(rewound.is_ok(), "{rewound:?}");
    drop(stopper);
}
