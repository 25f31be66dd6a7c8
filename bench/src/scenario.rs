//! The scenarios, and the throughput measurement common to all of them: a stage never exits on
//! its own, so completion is its group's committed input offsets reaching the input's count
//! (every scenario commits only what it has produced).

use crate::cluster::{Cluster, GroupOffsets};
use crate::process::Measured;
use anyhow::{bail, Result};
use serde::Serialize;
use std::time::{Duration, Instant};

/// One thing measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// (a) raw rdkafka passthrough of the bytes.
    Ceiling,
    /// (b) stage-host with the stage-two plugin.
    Plugin,
    /// (b-eos) the same with `--exactly-once`: transactions of `--transaction-ms` of batches.
    PluginEos,
    /// (c) stage-two linked into the host's runner.
    Linked,
    /// (e) the same transform on Kafka Streams (bench/kstreams), at_least_once.
    KafkaStreams,
    /// (e-eos) the same on Kafka Streams, exactly_once_v2.
    KafkaStreamsEos,
    /// (d) the Python library's pattern: flush after every record.
    PythonPerRecord,
    /// (d) Python with batching: poll every 1000, flush at the end.
    PythonBatched,
    /// (f) stage-host with the Python bridge running the library's own StageTwo class.
    PythonStage,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub const ALL: [Scenario; 9] = [
        Scenario::Ceiling,
        Scenario::Plugin,
        Scenario::PluginEos,
        Scenario::Linked,
        Scenario::KafkaStreams,
        Scenario::KafkaStreamsEos,
        Scenario::PythonPerRecord,
        Scenario::PythonBatched,
        Scenario::PythonStage,
    ];

    /// Short name for topics, logs and JSON.
    pub fn id(self) -> &'static str {
        match self {
            Scenario::Ceiling => "ceiling",
            Scenario::Plugin => "plugin",
            Scenario::PluginEos => "plugin-eos",
            Scenario::Linked => "linked",
            Scenario::KafkaStreams => "kstreams",
            Scenario::KafkaStreamsEos => "kstreams-eos",
            Scenario::PythonPerRecord => "python-per-record",
            Scenario::PythonBatched => "python-batched",
            Scenario::PythonStage => "python-stage",
        }
    }

    /// What it is, for tables and the chart.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Ceiling => "(a) ceiling: rdkafka passthrough",
            Scenario::Plugin => "(b) stage-host + libstage_two.so",
            Scenario::PluginEos => "(b-eos) stage-host + libstage_two.so, exactly-once",
            Scenario::Linked => "(c) stage-two linked, no plugin",
            Scenario::KafkaStreams => "(e) Kafka Streams, at_least_once",
            Scenario::KafkaStreamsEos => "(e-eos) Kafka Streams, exactly_once_v2",
            Scenario::PythonPerRecord => "(d) Python, flush per record",
            Scenario::PythonBatched => "(d) Python, batched",
            Scenario::PythonStage => "(f) stage-host + libpython_stage.so, the library's StageTwo",
        }
    }

    /// Whether it runs on the Python sample rather than the full input.
    pub fn is_python(self) -> bool {
        matches!(self, Scenario::PythonPerRecord | Scenario::PythonBatched)
    }

    /// Whether it runs the Kafka Streams peer (a JVM).
    pub fn is_kafka_streams(self) -> bool {
        matches!(self, Scenario::KafkaStreams | Scenario::KafkaStreamsEos)
    }
}

/// Throughput, CPU and memory of one run over the preloaded input.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Records in the input.
    pub records: u64,
    /// Records inside the timed window (from the first commit seen to the last).
    pub timed_records: u64,
    /// Length of the timed window, seconds.
    pub seconds: f64,
    /// Records per second over the window.
    pub records_per_second: f64,
    /// Input megabytes (10^6 bytes of key plus framed value) per second.
    pub mb_per_second: f64,
    /// CPU seconds (user + system, all threads) per million records, over the window.
    pub cpu_seconds_per_million: f64,
    /// Peak resident set size (VmHWM) when the last commit arrived, MB (10^6 bytes).
    pub peak_rss_mb: f64,
    /// Seconds from process start to the first commit (start-up and group join).
    pub startup_seconds: f64,
}

/// How often the output watermarks are read.
const WATCH_EVERY: Duration = Duration::from_millis(10);
/// A run that makes no progress for this long has failed.
const STALL: Duration = Duration::from_secs(120);

/// Watches `group`'s commits on `input_topic` until they cover `records` records, and
/// measures `process`.
pub fn measure_throughput(
    cluster: &Cluster,
    process: &mut impl Measured,
    input_topic: &str,
    group: &str,
    records: u64,
    bytes_per_record: f64,
) -> Result<Throughput> {
    measure_throughput_from(
        cluster,
        process,
        input_topic,
        group,
        records,
        bytes_per_record,
        |_| Ok(true),
    )
}

/// [`measure_throughput`], with the timed window opening at the first look at which records
/// have been committed and `window_opens` (given the records committed so far) answers true
/// (replicas: once every one of them has its partitions). If it never does before the end, the
/// window opens at the first commit.
pub fn measure_throughput_from(
    cluster: &Cluster,
    process: &mut impl Measured,
    input_topic: &str,
    group: &str,
    records: u64,
    bytes_per_record: f64,
    mut window_opens: impl FnMut(u64) -> Result<bool>,
) -> Result<Throughput> {
    let started = Instant::now();
    let mut commits = CommitWatch::new(cluster, input_topic, group, STALL)?;
    let mut first_commit: Option<(Instant, u64, f64)> = None;
    let mut window: Option<(Instant, u64, f64)> = None;
    loop {
        process.check_running()?;
        let seen = commits.seen(records)?;
        let now = Instant::now();
        if seen > 0 && first_commit.is_none() {
            first_commit = Some((now, seen, process.usage()?.cpu_seconds));
        }
        if seen > 0 && seen < records && window.is_none() && window_opens(seen)? {
            window = Some((Instant::now(), seen, process.usage()?.cpu_seconds));
        }
        if seen >= records {
            let usage = process.usage()?;
            let (t0, seen0, cpu0) = window.or(first_commit).expect("set when output appeared");
            // If everything arrived before the first look, time the whole run instead.
            let (t0, seen0, cpu0) = if seen0 >= records {
                (started, 0, 0.0)
            } else {
                (t0, seen0, cpu0)
            };
            let timed_records = records - seen0;
            let seconds = now.duration_since(t0).as_secs_f64().max(1e-6);
            let rate = timed_records as f64 / seconds;
            return Ok(Throughput {
                records,
                timed_records,
                seconds,
                records_per_second: rate,
                mb_per_second: rate * bytes_per_record / 1e6,
                cpu_seconds_per_million: (usage.cpu_seconds - cpu0) / timed_records as f64 * 1e6,
                peak_rss_mb: usage.peak_rss_bytes as f64 / 1e6,
                startup_seconds: t0.duration_since(started).as_secs_f64(),
            });
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

/// Waits until `group` has committed `total` records of `input_topic`: the stage has caught
/// up with everything in its input, including the latency records earlier scenarios added
/// after the preload. A latency run must start from an idle stage, or it times the backlog.
pub fn wait_until_committed(
    cluster: &Cluster,
    process: &mut impl Measured,
    input_topic: &str,
    group: &str,
    total: u64,
) -> Result<()> {
    wait_until_committed_within(cluster, process, input_topic, group, total, STALL)
}

/// [`wait_until_committed`], failing after `stall` without progress (a process under
/// valgrind is 50 times slower).
pub fn wait_until_committed_within(
    cluster: &Cluster,
    process: &mut impl Measured,
    input_topic: &str,
    group: &str,
    total: u64,
    stall: Duration,
) -> Result<()> {
    let mut commits = CommitWatch::new(cluster, input_topic, group, stall)?;
    loop {
        process.check_running()?;
        if commits.seen(total)? >= total {
            return Ok(());
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

/// Reads how many records of a topic a group has committed, and fails when that number has
/// not grown for `stall` ([`STALL`] unless the caller says otherwise).
pub struct CommitWatch<'a> {
    cluster: &'a Cluster,
    topic: &'a str,
    partitions: i32,
    offsets: GroupOffsets,
    last_progress: (Instant, u64),
    stall: Duration,
}

impl<'a> CommitWatch<'a> {
    /// Watches `group`'s commits on `topic`.
    pub fn new(cluster: &'a Cluster, topic: &'a str, group: &str, stall: Duration) -> Result<Self> {
        Ok(CommitWatch {
            cluster,
            topic,
            partitions: cluster.partitions(topic)?,
            offsets: cluster.group_offsets(group)?,
            last_progress: (Instant::now(), 0),
            stall,
        })
    }

    /// Records committed so far, out of the `expected` the caller waits for.
    pub fn seen(&mut self, expected: u64) -> Result<u64> {
        let seen = self
            .cluster
            .committed_total(&self.offsets, self.topic, self.partitions)?;
        let now = Instant::now();
        if seen > self.last_progress.1 {
            self.last_progress = (now, seen);
        } else if seen < expected && now.duration_since(self.last_progress.0) > self.stall {
            bail!(
                "no progress for {} s after {seen} of {expected} records",
                self.stall.as_secs()
            );
        }
        Ok(seen)
    }
}
