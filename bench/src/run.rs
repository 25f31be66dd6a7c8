//! One benchmark run: the broker's reference (Kafka's perf tests), then each scenario in turn
//! on a fresh copy of the same data (throughput, then latency at a fixed rate and at half the
//! scenario's maximum through the same still-running process), then the replicas curve on an
//! input of its own, then the report.

use crate::cli::BenchArgs;
use crate::cluster::Cluster;
use crate::commands::{self, expand_home};
use crate::latency::{self, Latency, Load};
use crate::perf_test;
use crate::preload::{self, RecordMaker};
use crate::process::StageProcess;
use crate::replicas;
use crate::report::{properties, Report, ScenarioResult, Settings};
use crate::scenario::{measure_throughput, wait_until_committed, Scenario};
use crate::svg;
use anyhow::{bail, Context, Result};
use plugin_api::Stage;
use stage_host::runner_parts::{DEFAULT_BATCH_SIZE, DEFAULT_BATCH_WAIT_MS, MAX_IN_FLIGHT_BATCHES};
use stage_host::{CONSUMER_DEFAULTS, PRODUCER_DEFAULTS};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Settings of the Python scenarios' clients (bench/python/stage_two.py).
const PYTHON_SETTINGS: &[(&str, &str)] = &[
    ("client", "confluent-kafka 2.x, AvroDeserializer/AvroSerializer (fastavro)"),
    ("consumer", "auto.offset.reset=earliest, session.timeout.ms=6000, auto commit every 100 ms (so the benchmark sees completion)"),
    ("producer", "library defaults"),
];

/// Settings of the Kafka Streams peer (bench/kstreams/src/main/java/dev/stagehost/kstreams/
/// StageTwoStreams.java says why each differs from Streams' defaults).
const KSTREAMS_SETTINGS: &[(&str, &str)] = &[
    ("client", "Kafka Streams 4.4.0, Avro GenericDatumReader/GenericDatumWriter"),
    ("changed", "commit.interval.ms=100, producer linger.ms=5 and batch.size=1000000, consumer session.timeout.ms=6000, heartbeat.interval.ms=1000, fetch.max.wait.ms=10"),
    ("unchanged", "acks=all, enable.idempotence=true, max.poll.records=1000, auto.offset.reset=earliest"),
];

/// Runs the benchmark and writes the results.
pub fn run(args: &BenchArgs) -> Result<()> {
    for file in [&args.stage_host, &args.plugin] {
        if !file.is_file() {
            bail!(
                "{} not found; run `cargo build --release` first",
                file.display()
            );
        }
    }
    if args.callgrind {
        return crate::callgrind::run(args);
    }
    if let Some(unknown) = args
        .only
        .iter()
        .find(|id| !Scenario::ALL.iter().any(|s| s.id() == id.as_str()))
    {
        bail!(
            "--only: no scenario {unknown:?}; the ids are {:?}",
            Scenario::ALL.map(Scenario::id)
        );
    }
    if !args.skip_kstreams && !args.kstreams_jar.is_file() {
        bail!(
            "{} not found; run `mvn -B -f bench/kstreams/pom.xml package` or pass --skip-kstreams",
            args.kstreams_jar.display()
        );
    }
    let python = expand_home(&args.python);
    if !args.skip_python && !python.is_file() {
        bail!(
            "{} not found; run scripts/python-env or pass --skip-python",
            python.display()
        );
    }
    let broker = match perf_test::kafka_version(&args.kafka_tool) {
        Ok(version) => format!("Apache Kafka {version}"),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the broker's version is unknown");
            "Apache Kafka, version unknown".to_string()
        }
    };
    let mut cluster = Cluster::new(&args.connection)?;
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let input = format!("bench-{run_id}-input");
    tracing::info!(records = args.records, topic = %input, "preloading");
    let preloaded = preload::preload(&mut cluster, &input, args.records)?;
    let bytes_per_record = preloaded.bytes as f64 / preloaded.records.max(1) as f64;

    let broker_reference = if args.skip_broker_reference {
        None
    } else {
        tracing::info!(
            "the broker's reference: kafka-producer-perf-test, kafka-consumer-perf-test"
        );
        Some(
            perf_test::run(
                &mut cluster,
                &args.kafka_tool,
                &args.perf_test_jvm_options,
                &format!("bench-{run_id}-perf-test"),
                args.records,
                bytes_per_record.round() as u64,
                &args.log_dir,
            )
            .context("the broker's reference (--skip-broker-reference leaves it out)")?,
        )
    };

    // The size probe's topic is not reused: each scenario gets a fresh input, so no scenario
    // reads what an earlier one's latency runs appended (millions of records at half the
    // fastest scenario's rate, which a slower one would first have to work through).
    cluster.delete_topic(&input);

    let mut scenarios = Vec::new();
    for scenario in Scenario::ALL {
        if ((scenario.is_python() || scenario == Scenario::PythonStage) && args.skip_python)
            || (scenario.is_kafka_streams() && args.skip_kstreams)
            || !(args.only.is_empty() || args.only.iter().any(|id| id == scenario.id()))
        {
            continue;
        }
        let records = if scenario.is_python() {
            args.python_sample
        } else {
            args.records
        };
        let topic = format!("bench-{run_id}-{}-input", scenario.id());
        tracing::info!(records, topic = %topic, "preloading the scenario's input");
        preload::preload(&mut cluster, &topic, records)?;
        let result = run_scenario(
            args,
            &mut cluster,
            scenario,
            &Topics {
                run_id,
                input: &topic,
                records,
                bytes_per_record,
            },
        )
        .with_context(|| scenario.label())?;
        cluster.delete_topic(&topic);
        scenarios.push(result);
    }

    let replicas = if args.skip_replicas || args.replicas.is_empty() {
        Vec::new()
    } else {
        let input = format!("bench-{run_id}-replicas-input");
        tracing::info!(records = args.records, topic = %input, "preloading the replicas' input");
        preload::preload(&mut cluster, &input, args.records)?;
        let runs = replicas::run(args, &mut cluster, run_id, &input, bytes_per_record)
            .context("the replicas curve (--skip-replicas leaves it out)");
        cluster.delete_topic(&input);
        runs?
    };
    cluster.delete_created();

    let mut report = Report {
        finished_at_unix: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        broker,
        records: args.records,
        python_sample: args.python_sample,
        bytes_per_record,
        settings: Settings {
            producer: properties(PRODUCER_DEFAULTS),
            consumer: properties(CONSUMER_DEFAULTS),
            batch_size: DEFAULT_BATCH_SIZE,
            batch_wait_ms: DEFAULT_BATCH_WAIT_MS,
            max_in_flight_batches: MAX_IN_FLIGHT_BATCHES,
            python: properties(PYTHON_SETTINGS),
            kstreams: {
                let mut p = properties(KSTREAMS_SETTINGS);
                p.insert("jvm".into(), args.kstreams_jvm_options.clone());
                p.insert(
                    "num.stream.threads".into(),
                    args.kstreams_threads.to_string(),
                );
                p
            },
            latency_producer: properties(latency::LOAD_PRODUCER),
            latency_consumer: properties(latency::MEASURING_CONSUMER),
        },
        scenarios,
        broker_reference,
        replicas,
        targets: Vec::new(),
    };
    report.check_targets();
    write_results(&args.out, &report)?;
    Ok(())
}

/// Where a scenario reads, and how much.
struct Topics<'a> {
    run_id: u64,
    input: &'a str,
    /// Records timed for throughput: the preloaded ones, first in every partition.
    records: u64,
    bytes_per_record: f64,
}

fn run_scenario(
    args: &BenchArgs,
    cluster: &mut Cluster,
    scenario: Scenario,
    topics: &Topics<'_>,
) -> Result<ScenarioResult> {
    let output = format!("bench-{}-{}-output", topics.run_id, scenario.id());
    let group = format!("bench-{}-{}", topics.run_id, scenario.id());
    // Every scenario writes to an output topic shaped as stage two declares it.
    let partitions = stage_two::StageTwo::spec().output_topic.partitions;
    cluster.create_topic(&output, partitions)?;
    let command = commands::command_for(
        args,
        scenario,
        commands::Topics {
            input: topics.input,
            output: &output,
            group: &group,
        },
    )?;
    let log = args.log_dir.join(format!("{}.log", scenario.id()));
    tracing::info!(scenario = scenario.id(), records = topics.records, log = %log.display(), "running");
    let mut process = StageProcess::start(command, &log)?;
    let measured = (|| {
        let throughput = measure_throughput(
            cluster,
            &mut process,
            topics.input,
            &group,
            topics.records,
            topics.bytes_per_record,
        )?;
        tracing::info!(
            scenario = scenario.id(),
            records_per_second = throughput.records_per_second as u64,
            cpu_s_per_m = throughput.cpu_seconds_per_million,
            peak_rss_mb = throughput.peak_rss_mb,
            "throughput"
        );
        // Each latency run starts from an idle stage: caught up with everything in its input,
        // including what its own earlier latency run appended.
        let mut in_topic = topics.records;
        let mut latency_run = |load: Load| -> Result<(Option<Latency>, Option<String>)> {
            let rate =
                match latency::run_rate(load, args.latency_rate, throughput.records_per_second) {
                    Ok(rate) => rate,
                    Err(why) => return Ok((None, Some(why))),
                };
            wait_until_committed(cluster, &mut process, topics.input, &group, in_topic)?;
            let mut maker = RecordMaker::for_topic(cluster, topics.input)?;
            let l = latency::measure_latency(
                cluster,
                &mut maker,
                topics.input,
                &output,
                rate,
                args.latency_seconds,
            )?;
            in_topic += l.sent;
            tracing::info!(
                scenario = scenario.id(),
                rate,
                p50_ms = l.p50_ms,
                p99_ms = l.p99_ms,
                p999_ms = l.p999_ms,
                received = l.received,
                "latency"
            );
            Ok((Some(l), None))
        };
        let (latency, latency_skipped) = latency_run(Load::Fixed)?;
        let (latency_half_max, latency_half_max_skipped) = latency_run(Load::HalfMax)?;
        anyhow::Ok(ScenarioResult {
            scenario,
            label: scenario.label().to_string(),
            throughput,
            latency,
            latency_skipped,
            latency_half_max,
            latency_half_max_skipped,
        })
    })();
    process.stop(Duration::from_secs(40))?;
    cluster.delete_topic(&output);
    measured
}

/// Writes results.json, results.md and results.svg into `dir`.
fn write_results(dir: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let files = [
        ("results.json", serde_json::to_string_pretty(report)? + "\n"),
        ("results.md", report.markdown()),
        ("results.svg", svg::chart(report)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(file = %path.display(), "written");
    }
    print!("{}", report.markdown());
    Ok(())
}
