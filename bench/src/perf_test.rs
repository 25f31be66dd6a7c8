//! The broker's reference line: Kafka's own `kafka-producer-perf-test` writes as many records
//! of the input's mean size as the scenarios read, with `acks=all`, into a fresh topic shaped
//! like the input, and `kafka-consumer-perf-test` reads them back. Both run through
//! `kafka_cluster/kafka/kafka` (the project's launcher of Kafka's tools) and are parsed from
//! their summary lines. They are JVM processes that start, run and exit, so their CPU and
//! memory are not comparable with a scenario's measured window: only rates are reported.

use crate::cluster::Cluster;
use crate::preload::INPUT_PARTITIONS;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::Command;

/// Producer properties of the reference run, on top of the Java producer's defaults.
pub const PRODUCER_PROPERTIES: &[(&str, &str)] = &[("acks", "all")];

/// The tools' MB is 2^20 bytes; the report's is 10^6.
const MIB: f64 = 1_048_576.0;

/// What `kafka-producer-perf-test` reported at the end of its run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProducerPerf {
    /// Records sent.
    pub records: u64,
    /// Records per second over the whole run.
    pub records_per_second: f64,
    /// MB (10^6 bytes) of record values per second.
    pub mb_per_second: f64,
    /// Mean send-to-acknowledgement latency, ms.
    pub avg_latency_ms: f64,
    /// Slowest, ms.
    pub max_latency_ms: f64,
    /// Percentiles of the same, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
}

/// What `kafka-consumer-perf-test` reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumerPerf {
    /// Records consumed.
    pub records: u64,
    /// Records per second from start to end, the group join included.
    pub records_per_second: f64,
    /// MB (10^6 bytes) per second, the same way.
    pub mb_per_second: f64,
    /// Time spent joining the group, ms.
    pub rebalance_ms: f64,
    /// Time spent fetching, ms.
    pub fetch_ms: f64,
    /// Records per second while fetching (the join left out): the consumer's rate.
    pub fetch_records_per_second: f64,
    /// MB (10^6 bytes) per second while fetching.
    pub fetch_mb_per_second: f64,
}

/// The reference line of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerReference {
    /// Records written and read.
    pub records: u64,
    /// Bytes per record (the input's mean key plus framed value; the tool writes no key).
    pub record_size: u64,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Producer properties given to the tool.
    pub producer_properties: Vec<String>,
    /// JVM options added to the launcher's (`KAFKA_TOOL_OPTS`).
    pub jvm_options: String,
    /// The producer's summary.
    pub producer: ProducerPerf,
    /// The consumer's summary.
    pub consumer: ConsumerPerf,
}

/// The version of Kafka the launcher runs (`kafka_cluster/kafka/kafka version`).
pub fn kafka_version(tool: &Path) -> Result<String> {
    let out = Command::new(tool)
        .arg("version")
        .output()
        .with_context(|| format!("running {} version", tool.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        bail!("{} version failed ({})", tool.display(), out.status);
    }
    Ok(version)
}

/// Runs both tools against a fresh topic `topic` (created here, deleted after).
pub fn run(
    cluster: &mut Cluster,
    tool: &Path,
    jvm_options: &str,
    topic: &str,
    records: u64,
    record_size: u64,
    log_dir: &Path,
) -> Result<BrokerReference> {
    cluster.create_topic(topic, INPUT_PARTITIONS)?;
    let result = (|| {
        let bootstrap = cluster.conn().bootstrap_servers.clone();
        let properties: Vec<String> = PRODUCER_PROPERTIES
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut producer = Command::new(tool);
        producer
            .arg("producer-perf-test")
            .args(["--bootstrap-server", &bootstrap, "--topic", topic])
            .args(["--num-records", &records.to_string()])
            .args(["--record-size", &record_size.to_string()])
            .args(["--throughput", "-1"])
            .arg("--command-property")
            .args(&properties);
        let out = run_tool(
            producer,
            jvm_options,
            &log_dir.join("producer-perf-test.log"),
        )?;
        let producer = parse_producer(&out, record_size)?;
        tracing::info!(
            records_per_second = producer.records_per_second as u64,
            "kafka-producer-perf-test"
        );
        let mut consumer = Command::new(tool);
        consumer
            .arg("consumer-perf-test")
            .args(["--bootstrap-server", &bootstrap, "--topic", topic])
            .args(["--num-records", &records.to_string()])
            .args(["--timeout", "30000"]);
        let out = run_tool(
            consumer,
            jvm_options,
            &log_dir.join("consumer-perf-test.log"),
        )?;
        let consumer = parse_consumer(&out)?;
        tracing::info!(
            records_per_second = consumer.fetch_records_per_second as u64,
            "kafka-consumer-perf-test"
        );
        anyhow::Ok(BrokerReference {
            records,
            record_size,
            partitions: INPUT_PARTITIONS,
            producer_properties: properties,
            jvm_options: jvm_options.to_string(),
            producer,
            consumer,
        })
    })();
    cluster.delete_topic(topic);
    result
}

/// Runs one tool to its end; its stdout and stderr go to `log` as well. Returns stdout.
fn run_tool(mut command: Command, jvm_options: &str, log: &Path) -> Result<String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    command.env("KAFKA_TOOL_OPTS", jvm_options);
    let out = command
        .output()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::write(log, format!("{stdout}{stderr}"))
        .with_context(|| format!("writing {}", log.display()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}); see {}",
            command,
            out.status,
            log.display()
        );
    }
    Ok(stdout)
}

/// The summary line of `kafka-producer-perf-test`:
/// `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
/// P ms 50th, P ms 95th, P ms 99th, P ms 99.9th.` (progress lines lack the percentiles).
pub fn parse_producer(output: &str, record_size: u64) -> Result<ProducerPerf> {
    let line = output
        .lines()
        .rfind(|l| l.contains(" records sent, ") && l.contains("99.9th"))
        .context("no summary line in kafka-producer-perf-test's output")?;
    let mut fields = std::collections::HashMap::new();
    for part in line.trim().trim_end_matches('.').split(", ") {
        // "(M MB/sec)" rides with the rate: "R records/sec (M MB/sec)".
        let part = part.split(" (").next().unwrap_or(part);
        let (number, name) = part
            .split_once(' ')
            .with_context(|| format!("unreadable field {part:?} in {line:?}"))?;
        let name = name.trim_start_matches("ms ").to_string();
        let value: f64 = number
            .parse()
            .with_context(|| format!("unreadable number {number:?} in {line:?}"))?;
        fields.insert(name, value);
    }
    let get = |name: &str| {
        fields
            .get(name)
            .copied()
            .with_context(|| format!("no {name:?} in {line:?}"))
    };
    let records_per_second = get("records/sec")?;
    Ok(ProducerPerf {
        records: get("records sent")? as u64,
        records_per_second,
        mb_per_second: records_per_second * record_size as f64 / 1e6,
        avg_latency_ms: get("avg latency")?,
        max_latency_ms: get("max latency")?,
        p50_ms: get("50th")?,
        p95_ms: get("95th")?,
        p99_ms: get("99th")?,
        p999_ms: get("99.9th")?,
    })
}

/// `kafka-consumer-perf-test`'s header line and the values line after it:
/// `start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
/// rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec`.
pub fn parse_consumer(output: &str) -> Result<ConsumerPerf> {
    let mut lines = output.lines().map(str::trim).filter(|l| !l.is_empty());
    let header = lines
        .by_ref()
        .find(|l| l.starts_with("start.time"))
        .context("no header line in kafka-consumer-perf-test's output")?;
    let values = lines
        .next()
        .context("no values after kafka-consumer-perf-test's header")?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let cells: Vec<&str> = values.split(',').map(str::trim).collect();
    if names.len() != cells.len() {
        bail!(
            "kafka-consumer-perf-test: {} names, {} values: {values:?}",
            names.len(),
            cells.len()
        );
    }
    let get = |name: &str| -> Result<f64> {
        let i = names
            .iter()
            .position(|n| *n == name)
            .with_context(|| format!("no {name} in {header:?}"))?;
        cells[i]
            .parse()
            .with_context(|| format!("unreadable {name} {:?}", cells[i]))
    };
    Ok(ConsumerPerf {
        records: get("data.consumed.in.nMsg")? as u64,
        records_per_second: get("nMsg.sec")?,
        mb_per_second: get("MB.sec")? * MIB / 1e6,
        rebalance_ms: get("rebalance.time.ms")?,
        fetch_ms: get("fetch.time.ms")?,
        fetch_records_per_second: get("fetch.nMsg.sec")?,
        fetch_mb_per_second: get("fetch.MB.sec")? * MIB / 1e6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka 4.4.0's output, progress line included.
    const PRODUCER: &str = "\
143211 records sent, 28642.2 records/sec (1.83 MB/sec), 412.3 ms avg latency, 905.0 ms max latency.
500000 records sent, 33738.191633 records/sec (2.16 MB/sec), 54.14 ms avg latency, 916.00 ms max latency, 43 ms 50th, 149 ms 95th, 178 ms 99th, 186 ms 99.9th.
";

    const CONSUMER: &str = "\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-12-01 09:28:49:502, 2026-12-01 09:28:50:741, 3.1948, 2.5785, 50000, 40355.1251, 716, 523, 6.1086, 95602.2945
";

    #[test]
    fn producer_summary() {
        let p = parse_producer(PRODUCER, 67).unwrap();
        assert_eq!(p.records, 500_000);
        assert_eq!(p.records_per_second, 33738.191633);
        assert!((p.mb_per_second - 33738.191633 * 67.0 / 1e6).abs() < 1e-9);
        assert_eq!(p.avg_latency_ms, 54.14);
        assert_eq!(p.max_latency_ms, 916.0);
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.p99_ms, p.p999_ms),
            (43.0, 149.0, 178.0, 186.0)
        );
    }

    #[test]
    fn producer_output_without_a_summary_is_an_error() {
        let progress = PRODUCER.lines().next().unwrap();
        assert!(parse_producer(progress, 67).is_err());
        assert!(parse_producer("", 67).is_err());
        let garbled = "5 records sent, fast records/sec (1 MB/sec), 1 ms avg latency, 1 ms max latency, 1 ms 50th, 1 ms 95th, 1 ms 99th, 1 ms 99.9th.";
        assert!(parse_producer(garbled, 67).is_err());
    }

    #[test]
    fn consumer_summary() {
        let c = parse_consumer(&format!("a warning on stdout\n{CONSUMER}")).unwrap();
        assert_eq!(c.records, 50_000);
        assert_eq!(c.records_per_second, 40355.1251);
        assert_eq!(c.rebalance_ms, 716.0);
        assert_eq!(c.fetch_ms, 523.0);
        assert_eq!(c.fetch_records_per_second, 95602.2945);
        assert!((c.fetch_mb_per_second - 6.1086 * 1.048576).abs() < 1e-9);
        assert!((c.mb_per_second - 2.5785 * 1.048576).abs() < 1e-9);
    }

    #[test]
    fn consumer_output_must_have_header_and_values() {
        assert!(parse_consumer("").is_err());
        let header = CONSUMER.lines().next().unwrap();
        assert!(parse_consumer(header).is_err());
        assert!(parse_consumer(&format!("{header}\n1, 2, 3")).is_err());
    }
}
