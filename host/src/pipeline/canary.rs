//! `pipeline canary`: run a new version of a stage beside the live one, on the same input,
//! and compare what the two produce before the new one serves.
//!
//! While the live version keeps serving, the new library runs as a shadow: a `stage-host`
//! process of its own, in its own consumer group (`<group>.canary`) started at the live
//! group's committed offsets, writing to a shadow topic (`<output>.canary`). It never commits
//! for the live group and never writes to the live output. Both versions stamp each output
//! with the input position it came from (`stage.source.*` headers; a pipeline turns that on
//! for every stage), so each input's outputs can be paired. When the shadow has read enough
//! (`--records`, or `--secs`), it is stopped, the live version is given time to get past the
//! same inputs, both outputs are read and compared ([`super::canary_compare`]), and the
//! report says what differed. Within the thresholds the canary passes (exit 0); with
//! `--promote` a passing canary goes on to the normal swap. The shadow topic and group are
//! removed afterwards unless `--keep`.

use super::canary_compare::{Comparison, Outputs, Position};
use super::control::{self, Request};
use super::file::{Pipeline, StageDef};
use super::snapshot::StageSnapshot;
use super::PipelineError;
use crate::client_events::EventsContext;
use crate::settings::Connection;
use clap::Args;
use confluent::SchemaRegistry;
use plugin_host::{StageKind, StageSpec};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Differences shown in the report.
const EXAMPLES: usize = 5;

/// Input records compared when neither `--records` nor `--secs` is given.
const DEFAULT_RECORDS: u64 = 1000;

/// The longest a canary runs unless `--secs` says otherwise.
const DEFAULT_SECS: u64 = 120;

/// `pipeline canary` arguments.
#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The stage's name in the pipeline file.
    pub stage: String,
    /// The new library.
    pub plugin: PathBuf,
    /// The pipeline file.
    #[arg(long, short = 'f', env = "STAGE_HOST_PIPELINE")]
    pub file: PathBuf,
    /// The new library's stage config (JSON); default: the live one's.
    #[arg(long)]
    pub config_json: Option<String>,
    /// Compare this many input records (the shadow stops once it read them); 1000 unless
    /// `--secs` is given alone.
    #[arg(long, value_name = "N")]
    pub records: Option<u64>,
    /// Compare what arrives within this many seconds instead (and at most this long with
    /// `--records`; default 120).
    #[arg(long, value_name = "SECONDS")]
    pub secs: Option<u64>,
    /// Largest share of compared inputs whose outputs may differ (or exist on one side only).
    #[arg(long, default_value = "0", value_name = "RATIO")]
    pub max_diff_ratio: f64,
    /// Largest share of the inputs the new version may fail (decode, transform, panic, encode).
    #[arg(long, default_value = "0", value_name = "RATIO")]
    pub max_error_ratio: f64,
    /// Swap the stage to the new library when the canary passes.
    #[arg(long)]
    pub promote: bool,
    /// Keep the shadow topic and consumer group afterwards (default: removed).
    #[arg(long)]
    pub keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The cluster the pipeline's stages use.
    #[command(flatten)]
    pub connection: Connection,
}

/// What a canary run found.
#[derive(Debug, Serialize)]
pub struct Report {
    stage: String,
    live_plugin: PathBuf,
    new_plugin: PathBuf,
    input_topic: String,
    /// The live group's committed offsets the shadow started from, per partition.
    from: BTreeMap<i32, i64>,
    /// The shadow's committed offsets when it stopped (the compared range ends there).
    to: BTreeMap<i32, i64>,
    comparison: Comparison,
    /// Failures of the new version, by kind.
    new_failures: BTreeMap<String, u64>,
    /// Records each version processed per second during the canary.
    live_records_per_second: f64,
    new_records_per_second: f64,
    /// 99th percentile of the batch latency, milliseconds (the live one when its processes
    /// serve metrics).
    live_p99_ms: Option<f64>,
    new_p99_ms: Option<f64>,
    passed: bool,
    verdict: String,
}

/// When the shadow stops: once it read `records` input records, if given, and at the latest
/// after `secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StopRule {
    records: Option<u64>,
    secs: u64,
}

impl StopRule {
    /// `--secs` alone runs for that long; otherwise the shadow reads `--records` (default
    /// 1000), for at most `--secs` (default 120).
    fn of(records: Option<u64>, secs: Option<u64>) -> StopRule {
        match (records, secs) {
            (None, Some(secs)) => StopRule {
                records: None,
                secs,
            },
            (records, secs) => StopRule {
                records: Some(records.unwrap_or(DEFAULT_RECORDS)),
                secs: secs.unwrap_or(DEFAULT_SECS),
            },
        }
    }

    /// Whether the shadow has read enough, having read `records_in`.
    fn enough(&self, records_in: u64) -> bool {
        self.records.is_some_and(|records| records_in >= records)
    }
}

/// The stage as it serves now: a swap changes the library and config the supervisor runs,
/// not the pipeline file. `serving` is the supervisor's view, `None` when it does not answer.
fn live_definition(in_file: &StageDef, serving: Option<&StageSnapshot>) -> StageDef {
    let mut live = in_file.clone();
    if let Some(stage) = serving {
        live.plugin = stage.plugin.clone();
        live.config = stage.config.clone();
    }
    live
}

/// The supervisor's view of `stage`, if it answers.
fn serving_stage(pipeline: &Pipeline, stage: &str) -> Option<StageSnapshot> {
    let answer = control::request(&pipeline.socket_path(), &Request::Status).ok()?;
    let snapshot: super::snapshot::Snapshot = serde_json::from_value(answer).ok()?;
    snapshot.stage(stage).cloned()
}

/// Runs a canary; `Ok` when it passed (and, with `--promote`, the swap succeeded).
pub fn run(args: &CanaryArgs, exe: &Path) -> Result<(), PipelineError> {
    let usage = |m: String| PipelineError::Usage(m);
    for (flag, ratio) in [
        ("--max-diff-ratio", args.max_diff_ratio),
        ("--max-error-ratio", args.max_error_ratio),
    ] {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(usage(format!(
                "{flag} must be between 0 and 1, not {ratio}"
            )));
        }
    }
    crate::validate::connection(&args.connection).map_err(usage)?;
    let stop = StopRule::of(args.records, args.secs);
    let pipeline = Pipeline::load(&args.file)?;
    let in_file = pipeline.stage(&args.stage).ok_or_else(|| {
        let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
        usage(format!(
            "no stage {} in {} (stages: {})",
            args.stage,
            args.file.display(),
            names.join(", ")
        ))
    })?;
    let def = &live_definition(in_file, serving_stage(&pipeline, &args.stage).as_ref());
    let new_plugin = std::path::absolute(&args.plugin).unwrap_or(args.plugin.clone());
    let config = match &args.config_json {
        Some(json) => {
            serde_json::from_str(json).map_err(|e| usage(format!("--config-json: {e}")))?
        }
        None => def.config.clone(),
    };
    let live_spec = inspect(exe, &def.plugin, &def.config)?;
    let new_spec = inspect(exe, &new_plugin, &config)?;
    if live_spec.kind == StageKind::Source || new_spec.kind == StageKind::Source {
        return Err(usage(format!(
            "stage {} is a source: a canary compares outputs of the same input, and a source has no input; swap it instead",
            args.stage
        )));
    }
    let input = def
        .input_topic
        .clone()
        .or(live_spec.input_topic.clone())
        .ok_or_else(|| usage(format!("stage {} has no input topic", args.stage)))?;
    let output = def
        .output_topic
        .clone()
        .unwrap_or(live_spec.output_topic.name.clone());
    let group = def
        .group_id
        .clone()
        .or(live_spec.group_id.clone())
        .ok_or_else(|| usage(format!("stage {} has no consumer group", args.stage)))?;
    let shadow = Shadow {
        topic: format!("{output}.canary"),
        group: format!("{group}.canary"),
    };
    let conn = &args.connection;
    let admin = Kafka::new(conn)?;
    admin.remove(&shadow)?;
    let from = admin.committed(&group, &input)?;
    admin.commit(&shadow.group, &input, &from)?;
    let live_at_start = from.values().sum::<i64>();

    let metrics_port = free_port()?;
    // Beside the stages' logs, where an operator looks.
    let logs = pipeline.run_dir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| PipelineError::Io(format!("{}: {e}", logs.display())))?;
    let log = logs.join(format!("{}-canary.log", args.stage));
    tracing::info!(stage = %args.stage, plugin = %new_plugin.display(), shadow_topic = %shadow.topic, shadow_group = %shadow.group, "canary: starting the shadow");
    let started = Instant::now();
    // The shadow topic gets the live stage's replication factor: the cluster's
    // min.insync.replicas applies to it as well.
    let mut shadow_args = def.args.clone();
    if let Some(replicas) = def.replication_factor {
        shadow_args.extend(["--replication-factor".to_string(), replicas.to_string()]);
    }
    let mut process = ShadowProcess::start(
        exe,
        &new_plugin,
        &config,
        &shadow_args,
        ShadowTopics {
            input: &input,
            output: &shadow.topic,
            group: &shadow.group,
        },
        metrics_port,
        log.as_path(),
    )?;
    let deadline = started + Duration::from_secs(stop.secs);
    let mut shadow_metrics = None;
    while Instant::now() < deadline {
        if let Some(status) = process.exited() {
            return Err(PipelineError::Refused(format!(
                "the new version stopped on its own ({status}): {}",
                last_line(log.as_path())
            )));
        }
        if let Some(metrics) = scrape(metrics_port) {
            let done = stop.enough(metrics.records_in);
            shadow_metrics = Some(metrics);
            if done {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let shadow_secs = started.elapsed().as_secs_f64();
    let shadow_metrics = scrape(metrics_port).or(shadow_metrics).unwrap_or_default();
    process.stop()?;
    let to = admin.committed(&shadow.group, &input)?;
    // The live version must have got past the same inputs before its outputs are read.
    let live = admin.wait_committed_past(&group, &input, &to, Duration::from_secs(120))?;
    let live_secs = started.elapsed().as_secs_f64();
    let registry = conn
        .registry()
        .map_err(|e| PipelineError::Io(e.to_string()))?;
    let mut decoder = Decoder::new(&registry);
    let range = Range {
        topic: &input,
        from: &from,
        to: &to,
    };
    let since_ms = epoch_ms() - started.elapsed().as_millis() as i64 - 120_000;
    let live_outputs = admin.read_outputs(&output, &range, Some(since_ms), &mut decoder)?;
    if live_outputs.is_empty() && to.values().sum::<i64>() > live_at_start {
        return Err(PipelineError::Refused(format!(
            "no output of the live stage in {output} names its input position: stamp positions on the live stage (pipelines do; or add --position-headers to its args)"
        )));
    }
    let new_outputs = admin.read_outputs(&shadow.topic, &range, None, &mut decoder)?;
    let comparison = Comparison::of(&live_outputs, &new_outputs, EXAMPLES);
    let inputs = (to.values().sum::<i64>() - from.values().sum::<i64>()).max(0) as u64;
    let failed: u64 = shadow_metrics.errors.values().sum();
    let error_ratio = if inputs == 0 {
        0.0
    } else {
        failed as f64 / inputs as f64
    };
    let diff_ratio = comparison.diff_ratio();
    let mut problems = Vec::new();
    if comparison.compared == 0 {
        problems.push("no input was compared (did records arrive on the input?)".to_string());
    }
    if diff_ratio > args.max_diff_ratio {
        problems.push(format!(
            "{:.1}% of the compared inputs differ (limit {:.1}%)",
            diff_ratio * 100.0,
            args.max_diff_ratio * 100.0
        ));
    }
    if error_ratio > args.max_error_ratio {
        problems.push(format!(
            "the new version failed {:.1}% of the inputs (limit {:.1}%)",
            error_ratio * 100.0,
            args.max_error_ratio * 100.0
        ));
    }
    let passed = problems.is_empty();
    let live_p99_ms = live_p99(&pipeline, &args.stage);
    let report = Report {
        stage: args.stage.clone(),
        live_plugin: def.plugin.clone(),
        new_plugin: new_plugin.clone(),
        input_topic: input.clone(),
        from: from.clone(),
        to: to.clone(),
        comparison,
        new_failures: shadow_metrics.errors.clone(),
        live_records_per_second: (live - live_at_start).max(0) as f64 / live_secs.max(0.001),
        new_records_per_second: shadow_metrics.records_in as f64 / shadow_secs.max(0.001),
        live_p99_ms,
        new_p99_ms: shadow_metrics.p99_ms(),
        passed,
        verdict: if passed {
            format!(
                "PASS: {:.1}% differ (limit {:.1}%), {:.1}% failed (limit {:.1}%)",
                diff_ratio * 100.0,
                args.max_diff_ratio * 100.0,
                error_ratio * 100.0,
                args.max_error_ratio * 100.0
            )
        } else {
            format!("FAIL: {}", problems.join("; "))
        },
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        );
    } else {
        print!("{}", render(&report));
    }
    if !args.keep {
        admin.remove(&shadow)?;
    }
    if !passed {
        return Err(PipelineError::Refused(format!(
            "canary of stage {} failed: {}",
            args.stage,
            problems.join("; ")
        )));
    }
    if args.promote {
        let request = Request::Swap {
            stage: args.stage.clone(),
            plugin: new_plugin,
            config: args.config_json.as_ref().map(|_| config),
            // A canary runs only for stages with an input, never for a source.
            restart_source: false,
        };
        let socket = pipeline.socket_path();
        let answer = control::request(&socket, &request)
            .map_err(|e| PipelineError::not_running(socket, &e))?;
        return super::report(answer);
    }
    Ok(())
}

/// The report as text.
fn render(report: &Report) -> String {
    use std::fmt::Write;
    let c = &report.comparison;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "canary of stage {}: {} (new) against {} (live)",
        report.stage,
        report.new_plugin.display(),
        report.live_plugin.display()
    );
    let ranges: Vec<String> = report
        .to
        .iter()
        .map(|(p, to)| format!("[{p}] {}..{to}", report.from.get(p).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(out, "input {}: {}", report.input_topic, ranges.join(", "));
    let _ = writeln!(
        out,
        "compared {} inputs: {} identical, {} different, {} only live, {} only new",
        c.compared, c.identical, c.different, c.only_live, c.only_new
    );
    let failures: Vec<String> = report
        .new_failures
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    let _ = writeln!(out, "new version failures: {}", failures.join(", "));
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.1} ms")).unwrap_or("-".into());
    let _ = writeln!(
        out,
        "throughput: live {:.0} records/s, new {:.0} records/s; p99 batch latency: live {}, new {}",
        report.live_records_per_second,
        report.new_records_per_second,
        ms(report.live_p99_ms),
        ms(report.new_p99_ms)
    );
    for d in &c.examples {
        let side = |v: &[super::canary_compare::Produced]| {
            if v.is_empty() {
                "(nothing)".to_string()
            } else {
                v.iter()
                    .map(|p| p.value.clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let _ = writeln!(
            out,
            "  [{}]@{}  live {}  |  new {}",
            d.input.partition,
            d.input.offset,
            side(&d.live),
            side(&d.new)
        );
    }
    let _ = writeln!(out, "{}", report.verdict);
    out
}

/// The shadow's topic and group.
struct Shadow {
    topic: String,
    group: String,
}

/// What the shadow reads and writes.
struct ShadowTopics<'a> {
    input: &'a str,
    output: &'a str,
    group: &'a str,
}

/// The shadow `stage-host` process.
struct ShadowProcess {
    child: Child,
}

/// Flags the canary sets for the shadow itself; the stage's own values are dropped.
const SHADOW_FLAGS: &[&str] = &[
    "--input-topic",
    "--output-topic",
    "--group-id",
    "--on-error",
    "--dead-letter-topic",
    "--metrics-addr",
    "--transactional-id",
    "--status-fd",
    "--config-json",
    "--config",
    "--plugin",
];

impl ShadowProcess {
    fn start(
        exe: &Path,
        plugin: &Path,
        config: &serde_json::Value,
        stage_args: &[String],
        topics: ShadowTopics<'_>,
        metrics_port: u16,
        log: &Path,
    ) -> Result<ShadowProcess, PipelineError> {
        let mut args: Vec<String> = Vec::new();
        let mut skip_value = false;
        for arg in stage_args {
            if skip_value {
                skip_value = false;
                continue;
            }
            let flag = arg.split('=').next().unwrap_or(arg);
            if SHADOW_FLAGS.contains(&flag) {
                skip_value = !arg.contains('=');
                continue;
            }
            args.push(arg.clone());
        }
        let log_file = std::fs::File::create(log)
            .map_err(|e| PipelineError::Io(format!("{}: {e}", log.display())))?;
        let child = Command::new(exe)
            .arg("--plugin")
            .arg(plugin)
            .args(["--config-json", &config.to_string()])
            .args(["--input-topic", topics.input])
            .args(["--output-topic", topics.output])
            .args(["--group-id", topics.group])
            .args(["--transactional-id", &format!("{}.0", topics.group)])
            // The new version's failures are what the canary counts, not what stops it.
            .args(["--on-error", "skip", "--position-headers"])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(&args)
            .env("STAGE_HOST_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| PipelineError::Io(format!("cannot start {}: {e}", exe.display())))?;
        Ok(ShadowProcess { child })
    }

    fn exited(&mut self) -> Option<String> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(super::supervisor::describe)
    }

    /// Stops it (it drains and commits), waiting at most a minute.
    fn stop(&mut self) -> Result<(), PipelineError> {
        super::process::signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        Err(PipelineError::Io(
            "the shadow did not stop within a minute".into(),
        ))
    }
}

impl Drop for ShadowProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The input positions compared: per partition `[from, to)`.
struct Range<'a> {
    topic: &'a str,
    from: &'a BTreeMap<i32, i64>,
    to: &'a BTreeMap<i32, i64>,
}

impl Range<'_> {
    fn contains(&self, partition: i32, offset: i64) -> bool {
        let from = self.from.get(&partition).copied().unwrap_or(0);
        self.to
            .get(&partition)
            .is_some_and(|&to| offset >= from && offset < to)
    }
}

/// What the canary asks of Kafka.
struct Kafka<'a> {
    conn: &'a Connection,
    admin: AdminClient<EventsContext>,
    runtime: tokio::runtime::Runtime,
}

impl<'a> Kafka<'a> {
    fn new(conn: &'a Connection) -> Result<Kafka<'a>, PipelineError> {
        let io = |e: String| PipelineError::Io(e);
        Ok(Kafka {
            conn,
            admin: conn
                .client_config(&[])
                .create_with_context(EventsContext::default())
                .map_err(|e| io(format!("an admin client: {e}")))?,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| io(e.to_string()))?,
        })
    }

    fn consumer(&self, group: &str) -> Result<BaseConsumer<EventsContext>, PipelineError> {
        self.consumer_with(group, "read_committed")
    }

    fn consumer_with(
        &self,
        group: &str,
        isolation: &str,
    ) -> Result<BaseConsumer<EventsContext>, PipelineError> {
        self.conn
            .consumer_config(&[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("isolation.level", isolation),
            ])
            .create_with_context(EventsContext::default())
            .map_err(|e| PipelineError::Io(format!("a consumer: {e}")))
    }

    fn partitions(&self, topic: &str) -> Result<Vec<i32>, PipelineError> {
        let consumer = self.consumer("stage-host-canary")?;
        let metadata = consumer
            .fetch_metadata(Some(topic), self.conn.connect_timeout())
            .map_err(|e| PipelineError::Io(format!("metadata of {topic}: {e}")))?;
        Ok(metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect())
    }

    /// `group`'s committed offsets on `topic`; a partition with none starts at its low
    /// watermark, as the live stage would (`auto.offset.reset=earliest`).
    ///
    /// Read uncommitted: a `read_committed` consumer asks for stable offsets only (KIP-447),
    /// and an exactly-once stage has a transaction open nearly all the time, so the broker
    /// would answer "unstable" until the request timed out. The last committed offsets are
    /// all a canary needs to start from.
    fn committed(&self, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>, PipelineError> {
        let consumer = self.consumer_with(group, "read_uncommitted")?;
        let mut tpl = TopicPartitionList::new();
        for partition in self.partitions(topic)? {
            tpl.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(tpl, self.conn.connect_timeout())
            .map_err(|e| PipelineError::Io(format!("committed offsets of {group}: {e}")))?;
        let mut offsets = BTreeMap::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => {
                    consumer
                        .fetch_watermarks(topic, e.partition(), self.conn.connect_timeout())
                        .map_err(|e| PipelineError::Io(format!("watermarks of {topic}: {e}")))?
                        .0
                }
            };
            offsets.insert(e.partition(), offset);
        }
        Ok(offsets)
    }

    /// Commits `offsets` for `group` (which has no members: a plain offset commit).
    fn commit(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<(), PipelineError> {
        let consumer = self.consumer(group)?;
        let mut tpl = TopicPartitionList::new();
        for (&partition, &offset) in offsets {
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(|e| PipelineError::Io(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .and_then(|()| consumer.commit(&tpl, CommitMode::Sync))
            .map_err(|e| {
                PipelineError::Io(format!("starting group {group} at the live offsets: {e}"))
            })
    }

    /// Waits until `group` committed at least `to` on every partition; returns the sum of
    /// its committed offsets then.
    fn wait_committed_past(
        &self,
        group: &str,
        topic: &str,
        to: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<i64, PipelineError> {
        let deadline = Instant::now() + timeout;
        loop {
            let committed = self.committed(group, topic)?;
            let behind: Vec<String> = to
                .iter()
                .filter(|(p, &o)| committed.get(p).copied().unwrap_or(0) < o)
                .map(|(p, o)| format!("[{p}] {} < {o}", committed.get(p).copied().unwrap_or(0)))
                .collect();
            if behind.is_empty() {
                return Ok(committed.values().sum());
            }
            if Instant::now() >= deadline {
                return Err(PipelineError::Refused(format!(
                    "the live stage did not get past the compared inputs within {} s ({})",
                    timeout.as_secs(),
                    behind.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Reads `topic` (from `since_ms`, or its start) to its end, keeping the outputs of the
    /// inputs in `range`, decoded.
    fn read_outputs(
        &self,
        topic: &str,
        range: &Range<'_>,
        since_ms: Option<i64>,
        decoder: &mut Decoder<'_>,
    ) -> Result<Outputs, PipelineError> {
        let consumer = self.consumer("stage-host-canary-reader")?;
        let timeout = self.conn.connect_timeout();
        let mut tpl = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for partition in self.partitions(topic)? {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(|e| PipelineError::Io(format!("watermarks of {topic}: {e}")))?;
            if high > low {
                ends.insert(partition, high);
                tpl.add_partition_offset(topic, partition, Offset::Offset(low))
                    .map_err(|e| PipelineError::Io(e.to_string()))?;
            }
        }
        if let Some(since) = since_ms {
            let mut times = TopicPartitionList::new();
            for e in tpl.elements() {
                times
                    .add_partition_offset(topic, e.partition(), Offset::Offset(since))
                    .map_err(|e| PipelineError::Io(e.to_string()))?;
            }
            if let Ok(found) = consumer.offsets_for_times(times, timeout) {
                for e in found.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        tpl.set_partition_offset(topic, e.partition(), Offset::Offset(o))
                            .map_err(|e| PipelineError::Io(e.to_string()))?;
                    }
                }
            }
        }
        let mut outputs = Outputs::default();
        if tpl.count() == 0 {
            return Ok(outputs);
        }
        consumer
            .assign(&tpl)
            .map_err(|e| PipelineError::Io(format!("reading {topic}: {e}")))?;
        let mut done: HashMap<i32, bool> = ends.keys().map(|p| (*p, false)).collect();
        let mut last_progress = Instant::now();
        while done.values().any(|d| !d) && last_progress.elapsed() < Duration::from_secs(10) {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            last_progress = Instant::now();
            if message.offset() + 1 >= ends[&message.partition()] {
                done.insert(message.partition(), true);
            }
            let Some(position) = source_position(&message, range.topic) else {
                continue;
            };
            if !range.contains(position.partition, position.offset) {
                continue;
            }
            let value = match message.payload() {
                Some(payload) => decoder.decode(payload)?,
                None => serde_json::Value::Null,
            };
            let key = message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            outputs.add(position, key, &value);
        }
        Ok(outputs)
    }

    /// Deletes the shadow topic and group, if they exist.
    fn remove(&self, shadow: &Shadow) -> Result<(), PipelineError> {
        let options = AdminOptions::new().operation_timeout(Some(self.conn.connect_timeout()));
        let deleted = self
            .runtime
            .block_on(self.admin.delete_topics(&[&shadow.topic], &options))
            .map_err(|e| PipelineError::Io(format!("deleting {}: {e}", shadow.topic)))?;
        for result in deleted {
            if let Err((topic, code)) = result {
                if code != rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
                    return Err(PipelineError::Io(format!("deleting {topic}: {code}")));
                }
            }
        }
        let _ = self
            .runtime
            .block_on(self.admin.delete_groups(&[&shadow.group], &options));
        Ok(())
    }
}

/// The input position an output's `stage.source.*` headers name, if they name one of `topic`.
fn source_position(message: &impl Message, topic: &str) -> Option<Position> {
    let headers = message.headers()?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    if header("stage.source.topic")? != topic {
        return None;
    }
    Some(Position {
        partition: header("stage.source.partition")?.parse().ok()?,
        offset: header("stage.source.offset")?.parse().ok()?,
    })
}

/// Confluent-framed Avro values to JSON, with writer schemas from the registry (cached).
struct Decoder<'a> {
    registry: &'a SchemaRegistry,
    schemas: HashMap<u32, apache_avro::Schema>,
}

impl<'a> Decoder<'a> {
    fn new(registry: &'a SchemaRegistry) -> Self {
        Decoder {
            registry,
            schemas: HashMap::new(),
        }
    }

    fn decode(&mut self, payload: &[u8]) -> Result<serde_json::Value, PipelineError> {
        let io = |e: String| PipelineError::Io(e);
        let (id, mut datum) = confluent::framing::strip(payload).map_err(|e| io(e.to_string()))?;
        if !self.schemas.contains_key(&id) {
            let json = self
                .registry
                .schema_by_id(id)
                .map_err(|e| io(format!("schema {id}: {e}")))?;
            let schema = apache_avro::Schema::parse_str(&json)
                .map_err(|e| io(format!("schema {id}: {e}")))?;
            self.schemas.insert(id, schema);
        }
        let value = apache_avro::from_avro_datum(&self.schemas[&id], &mut datum, None)
            .map_err(|e| io(format!("an output with schema {id} does not decode: {e}")))?;
        apache_avro::from_value::<serde_json::Value>(&value)
            .map_err(|e| io(format!("an output with schema {id}: {e}")))
    }
}

/// What the shadow's metrics say.
#[derive(Debug, Default, Clone)]
struct ShadowMetrics {
    records_in: u64,
    errors: BTreeMap<String, u64>,
    /// The batch latency histogram: (upper bound in seconds, cumulative count).
    latency: Vec<(f64, f64)>,
}

impl ShadowMetrics {
    /// The 99th percentile of the batch latency, from the histogram's buckets.
    fn p99_ms(&self) -> Option<f64> {
        percentile_ms(&self.latency, 0.99)
    }
}

/// The `q` quantile of a cumulative histogram: the upper bound of the first bucket that holds
/// it, in milliseconds.
fn percentile_ms(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.iter().map(|(_, c)| *c).fold(0.0, f64::max);
    if total == 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, count)| *count >= total * q)
        .map(|(le, _)| le * 1000.0)
}

/// Reads the metrics served on `port`.
fn scrape(port: u16) -> Option<ShadowMetrics> {
    scrape_addr(&format!("127.0.0.1:{port}"))
}

fn scrape_addr(addr: &str) -> Option<ShadowMetrics> {
    let text = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?
        .get(format!("http://{addr}/metrics"))
        .send()
        .ok()?
        .text()
        .ok()?;
    let mut metrics = ShadowMetrics::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        let label = |name: &str| {
            series
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_string)
        };
        if series == "stage_host_records_in_total" {
            metrics.records_in = value as u64;
        } else if series.starts_with("stage_host_errors_total{") {
            if let Some(kind) = label("kind") {
                metrics.errors.insert(kind, value as u64);
            }
        } else if series.starts_with("stage_host_batch_latency_seconds_bucket{") {
            let le = label("le")
                .and_then(|le| le.parse().ok())
                .unwrap_or(f64::INFINITY);
            metrics.latency.push((le, value));
        }
    }
    Some(metrics)
}

/// The live stage's p99 batch latency, from its processes' metrics when they serve them.
fn live_p99(pipeline: &Pipeline, stage: &str) -> Option<f64> {
    let answer = control::request(&pipeline.socket_path(), &Request::Status).ok()?;
    let snapshot: super::snapshot::Snapshot = serde_json::from_value(answer).ok()?;
    let mut buckets: BTreeMap<u64, f64> = BTreeMap::new();
    for process in &snapshot.stage(stage)?.processes {
        let Some(metrics) = process.metrics_addr.as_deref().and_then(scrape_addr) else {
            continue;
        };
        for (le, count) in metrics.latency {
            *buckets.entry(le.to_bits()).or_default() += count;
        }
    }
    let mut merged: Vec<(f64, f64)> = buckets
        .into_iter()
        .map(|(le, count)| (f64::from_bits(le), count))
        .collect();
    merged.sort_by(|a, b| a.0.total_cmp(&b.0));
    percentile_ms(&merged, 0.99)
}

/// Loads a library in a child process (`stage-host inspect --json`) and returns its spec for
/// `config`.
fn inspect(
    exe: &Path,
    plugin: &Path,
    config: &serde_json::Value,
) -> Result<StageSpec, PipelineError> {
    let output = Command::new(exe)
        .args(["inspect", "--json", "--config-json", &config.to_string()])
        .arg(plugin)
        .output()
        .map_err(|e| PipelineError::Io(format!("cannot run {}: {e}", exe.display())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(PipelineError::StartFailed {
            reason: stderr
                .lines()
                .last()
                .unwrap_or("inspect failed")
                .trim()
                .to_string(),
            code: crate::error::exit_code::BAD_PLUGIN,
        });
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        PipelineError::Io(format!(
            "unreadable `stage-host inspect --json` output: {e}"
        ))
    })
}

fn free_port() -> Result<u16, PipelineError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| PipelineError::Io(format!("a free port: {e}")))
}

fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string()
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secs_alone_runs_for_that_long_and_records_stop_earlier() {
        let rule = |records, secs| StopRule::of(records, secs);
        let secs_alone = rule(None, Some(15));
        assert_eq!(
            secs_alone,
            StopRule {
                records: None,
                secs: 15
            }
        );
        assert!(
            !secs_alone.enough(1_000_000),
            "no record count ends a canary given only --secs"
        );
        assert_eq!(
            rule(None, None),
            StopRule {
                records: Some(1000),
                secs: 120
            }
        );
        assert!(rule(None, None).enough(1000));
        assert!(!rule(None, None).enough(999));
        assert_eq!(
            rule(Some(50), None),
            StopRule {
                records: Some(50),
                secs: 120
            }
        );
        assert_eq!(
            rule(Some(50), Some(10)),
            StopRule {
                records: Some(50),
                secs: 10
            }
        );
    }

    #[test]
    fn the_live_side_is_what_the_supervisor_serves_after_a_swap() {
        let file = Pipeline::parse(
            Path::new("/p/p.toml"),
            "[pipeline]\nname = \"p\"\n[[stage]]\nname = \"two\"\nplugin = \"libstage_two.so\"\nconfig = { ppm = 100.0 }\ngroup_id = \"g\"\n",
        )
        .unwrap();
        let in_file = file.stage("two").unwrap();
        let serving: StageSnapshot = serde_json::from_value(serde_json::json!({
            "name": "two",
            "plugin": "/opt/libstage_two-1.1.0.so",
            "config": {"ppm": 150.0},
            "replicas": 1,
            "processes": [],
        }))
        .unwrap();
        let live = live_definition(in_file, Some(&serving));
        assert_eq!(live.plugin, PathBuf::from("/opt/libstage_two-1.1.0.so"));
        assert_eq!(live.config, serde_json::json!({"ppm": 150.0}));
        assert_eq!(
            live.group_id.as_deref(),
            Some("g"),
            "the rest is the file's"
        );
        let report = Report {
            stage: "two".into(),
            live_plugin: live.plugin.clone(),
            new_plugin: PathBuf::from("/opt/libstage_two-1.2.0.so"),
            input_topic: "in".into(),
            from: BTreeMap::new(),
            to: BTreeMap::new(),
            comparison: Comparison::of(&Outputs::default(), &Outputs::default(), EXAMPLES),
            new_failures: BTreeMap::new(),
            live_records_per_second: 0.0,
            new_records_per_second: 0.0,
            live_p99_ms: None,
            new_p99_ms: None,
            passed: true,
            verdict: "PASS".into(),
        };
        assert!(
            render(&report).starts_with(
                "canary of stage two: /opt/libstage_two-1.2.0.so (new) against /opt/libstage_two-1.1.0.so (live)"
            ),
            "{}",
            render(&report)
        );
        assert_eq!(
            live_definition(in_file, None).plugin,
            PathBuf::from("/p/libstage_two.so"),
            "the file's when no supervisor answers"
        );
    }

    #[test]
    fn percentiles_come_from_the_first_bucket_that_holds_them() {
        let buckets = [
            (0.001, 10.0),
            (0.01, 90.0),
            (0.1, 99.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(percentile_ms(&buckets, 0.5), Some(10.0));
        assert_eq!(percentile_ms(&buckets, 0.99), Some(100.0));
        assert_eq!(percentile_ms(&[], 0.99), None);
    }
}
