//! The results: one JSON document, the same as a markdown table, and the targets checked
//! against them.

use crate::latency::Latency;
use crate::scenario::{Scenario, Throughput};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Seconds since the epoch when the run finished.
    pub finished_at_unix: u64,
    /// Logical CPUs of the machine (the broker shares them).
    pub cpus: usize,
    /// Records preloaded for the Rust scenarios.
    pub records: u64,
    /// Records for each Python scenario.
    pub python_sample: u64,
    /// Mean key plus framed value size of an input record, bytes.
    pub bytes_per_record: f64,
    /// Client settings of every scenario.
    pub settings: Settings,
    /// Per scenario.
    pub scenarios: Vec<ScenarioResult>,
    /// The targets.
    pub targets: Vec<Target>,
}

/// librdkafka and batching settings used.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// Producer properties of the host, the passthrough and the linked stage.
    pub producer: BTreeMap<String, String>,
    /// Consumer properties of the same (plus a fresh `group.id` per scenario).
    pub consumer: BTreeMap<String, String>,
    /// Records per batch (plugin call) and the longest wait to fill one.
    pub batch_size: usize,
    /// Milliseconds.
    pub batch_wait_ms: u64,
    /// Batches whose outputs may be unacknowledged at once.
    pub max_in_flight_batches: usize,
    /// The Python scenarios' clients.
    pub python: BTreeMap<String, String>,
    /// The Kafka Streams scenarios' settings.
    pub kstreams: BTreeMap<String, String>,
    /// The latency runs' load producer.
    pub latency_producer: BTreeMap<String, String>,
    /// The latency runs' measuring consumer.
    pub latency_consumer: BTreeMap<String, String>,
}

/// Properties as a sorted map.
pub fn properties(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One scenario's measurements.
#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    /// Which.
    pub scenario: Scenario,
    /// Description.
    pub label: String,
    /// Throughput, CPU and memory.
    pub throughput: Throughput,
    /// Latency at the fixed rate, when measured.
    pub latency: Option<Latency>,
    /// Why latency was not measured.
    pub latency_skipped: Option<String>,
}

/// A target and whether this run met it.
#[derive(Debug, Serialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The goal, as text.
    pub goal: String,
    /// The measured value.
    pub value: f64,
    /// Whether the goal is met.
    pub met: bool,
}

impl Report {
    fn scenario(&self, s: Scenario) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|r| r.scenario == s)
    }

    /// Checks the targets against the scenarios measured.
    pub fn check_targets(&mut self) {
        let rate = |s| self.scenario(s).map(|r| r.throughput.records_per_second);
        let mut targets = Vec::new();
        let mut ratio = |name: &str, goal: &str, value: Option<f64>, met: fn(f64) -> bool| {
            if let Some(value) = value {
                targets.push(Target {
                    name: name.into(),
                    goal: goal.into(),
                    value,
                    met: met(value),
                });
            }
        };
        let plugin = rate(Scenario::Plugin);
        let div = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        ratio(
            "(b)/(a) records/s",
            ">= 0.75",
            div(plugin, rate(Scenario::Ceiling)),
            |v| v >= 0.75,
        );
        ratio(
            "(b)/(c) records/s",
            ">= 0.95",
            div(plugin, rate(Scenario::Linked)),
            |v| v >= 0.95,
        );
        ratio(
            "(b)/(d) records/s, Python flush per record",
            ">= 100",
            div(plugin, rate(Scenario::PythonPerRecord)),
            |v| v >= 100.0,
        );
        let plugin_result = self.scenario(Scenario::Plugin);
        ratio(
            "(b) peak RSS, MB",
            "<= 50",
            plugin_result.map(|r| r.throughput.peak_rss_mb),
            |v| v <= 50.0,
        );
        ratio(
            "(b) p99 hop latency, ms",
            "<= 50",
            plugin_result.and_then(|r| r.latency.as_ref().map(|l| l.p99_ms)),
            |v| v <= 50.0,
        );
        self.targets = targets;
    }

    /// The results as markdown: the scenario table, the targets, the settings.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Stage-two on the local cluster (Apache Kafka, one node), {} records ({} for Python), \
             {:.0} bytes per input record, {} CPUs shared with the broker.\n",
            self.records, self.python_sample, self.bytes_per_record, self.cpus
        );
        md.push_str("| Scenario | Records | Records/s | MB/s | CPU s per M records | Peak RSS MB | Latency p50 ms | Latency p99 ms |\n");
        md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.scenarios {
            let t = &r.throughput;
            let (p50, p99) = match &r.latency {
                Some(l) => (format!("{:.1}", l.p50_ms), format!("{:.1}", l.p99_ms)),
                None => ("n/a".into(), "n/a".into()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} |",
                r.label,
                t.records,
                t.records_per_second,
                t.mb_per_second,
                t.cpu_seconds_per_million,
                t.peak_rss_mb,
                p50,
                p99
            );
        }
        for r in &self.scenarios {
            if let Some(why) = &r.latency_skipped {
                let _ = writeln!(md, "\n{}: latency not measured: {why}", r.label);
            }
        }
        if let Some(l) = self.scenarios.iter().find_map(|r| r.latency.as_ref()) {
            let _ = writeln!(
                md,
                "\nLatency: {} records/s for {} s into the running stage; hop time from handing a \
                 record to the producer to its output reaching a consumer.",
                l.rate, l.seconds
            );
        }
        md.push_str("\n| Target | Goal | Measured | Met |\n|---|---|---:|---|\n");
        for t in &self.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {} |",
                t.name,
                t.goal,
                t.value,
                if t.met { "yes" } else { "no" }
            );
        }
        let s = &self.settings;
        let join = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| format!("`{k}={v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "\nSettings (a, b, c): producer {}; consumer {}; batches of {} records, {} ms wait, \
             {} batches in flight, offsets committed after every output is acknowledged.\n\
             Python (d): {}. Kafka Streams (e): {}. Latency load producer: {}; measuring \
             consumer: {}.",
            join(&s.producer),
            join(&s.consumer),
            s.batch_size,
            s.batch_wait_ms,
            s.max_in_flight_batches,
            join(&s.python),
            join(&s.kstreams),
            join(&s.latency_producer),
            join(&s.latency_consumer),
        );
        md
    }
}
