//! The results: one JSON document, the same as a markdown table, and the targets checked
//! against them.

use crate::latency::Latency;
use crate::perf_test::BrokerReference;
use crate::replicas::{Implementation, ReplicaRun};
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
    /// The broker: "Apache Kafka <version>".
    pub broker: String,
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
    /// Kafka's own perf tests on the same broker, when run.
    pub broker_reference: Option<BrokerReference>,
    /// The replicas curve (empty when skipped).
    pub replicas: Vec<ReplicaRun>,
    /// The issue's targets.
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
    /// Latency at the fixed rate (`--latency-rate`), when measured.
    pub latency: Option<Latency>,
    /// Why latency at the fixed rate was not measured.
    pub latency_skipped: Option<String>,
    /// Latency at half of this scenario's measured maximum throughput, when measured.
    pub latency_half_max: Option<Latency>,
    /// Why that was not measured.
    pub latency_half_max_skipped: Option<String>,
}

/// Which way a target points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

impl Goal {
    fn met(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(g) => value >= g,
            Goal::AtMost(g) => value <= g,
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtLeast(g) => format!(">= {g}"),
            Goal::AtMost(g) => format!("<= {g}"),
        }
    }
}

/// A target and whether this run met it.
#[derive(Debug, Serialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The goal, as text.
    pub goal: String,
    /// The measured value (none when a scenario it needs was skipped or not measured).
    pub value: Option<f64>,
    /// Whether the goal is met (none when not measured).
    pub met: Option<bool>,
}

/// The issue's targets, each from this run's scenarios: ratios of (b) to the others, and (b)'s
/// own memory and latency.
pub fn targets(scenarios: &[ScenarioResult]) -> Vec<Target> {
    let find = |s: Scenario| scenarios.iter().find(|r| r.scenario == s);
    let rate = |s| find(s).map(|r| r.throughput.records_per_second);
    let cpu = |s| find(s).map(|r| r.throughput.cpu_seconds_per_million);
    let rss = |s| find(s).map(|r| r.throughput.peak_rss_mb);
    let div = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    use Scenario::*;
    let fixed = find(Plugin).and_then(|r| r.latency.as_ref());
    let latency_name = match fixed {
        Some(l) => format!("(b) p99 hop latency at {} records/s, ms", l.rate),
        None => "(b) p99 hop latency at 10000 records/s, ms".to_string(),
    };
    let list: Vec<(String, Goal, Option<f64>)> = vec![
        (
            "(b)/(a) records/s".into(),
            Goal::AtLeast(0.85),
            div(rate(Plugin), rate(Ceiling)),
        ),
        (
            "(b)/(e) records/s".into(),
            Goal::AtLeast(1.5),
            div(rate(Plugin), rate(KafkaStreams)),
        ),
        (
            "(b)/(e) CPU s per M records".into(),
            Goal::AtMost(0.5),
            div(cpu(Plugin), cpu(KafkaStreams)),
        ),
        (
            "(b-eos)/(b) records/s".into(),
            Goal::AtLeast(0.7),
            div(rate(PluginEos), rate(Plugin)),
        ),
        (
            "(b-eos)/(e-eos) records/s".into(),
            Goal::AtLeast(1.5),
            div(rate(PluginEos), rate(KafkaStreamsEos)),
        ),
        (
            "(b)/(d) records/s, Python flush per record".into(),
            Goal::AtLeast(100.0),
            div(rate(Plugin), rate(PythonPerRecord)),
        ),
        ("(b) peak RSS, MB".into(), Goal::AtMost(30.0), rss(Plugin)),
        (
            "(f)/(d) records/s, Python flush per record".into(),
            Goal::AtLeast(25.0),
            div(rate(PythonStage), rate(PythonPerRecord)),
        ),
        (
            "(f)/(d) records/s, Python batched".into(),
            Goal::AtLeast(4.0),
            div(rate(PythonStage), rate(PythonBatched)),
        ),
        (
            "(f) peak RSS, MB".into(),
            Goal::AtMost(60.0),
            rss(PythonStage),
        ),
        (
            "(b)/(e) peak RSS".into(),
            Goal::AtMost(0.25),
            div(rss(Plugin), rss(KafkaStreams)),
        ),
        (latency_name, Goal::AtMost(20.0), fixed.map(|l| l.p99_ms)),
    ];
    list.into_iter()
        .map(|(name, goal, value)| {
            let value = value.filter(|v| v.is_finite());
            Target {
                name,
                goal: goal.text(),
                value,
                met: value.map(|v| goal.met(v)),
            }
        })
        .collect()
}

/// "p50 / p99 / p99.9" of a latency run, ms.
fn percentiles(l: &Latency) -> String {
    format!("{:.1} / {:.1} / {:.1}", l.p50_ms, l.p99_ms, l.p999_ms)
}

impl Report {
    /// Checks the issue's targets against the scenarios measured.
    pub fn check_targets(&mut self) {
        self.targets = targets(&self.scenarios);
    }

    /// The fixed latency rate of this run (from any latency run at it).
    fn fixed_rate(&self) -> Option<u64> {
        self.scenarios
            .iter()
            .find_map(|r| r.latency.as_ref().map(|l| l.rate))
    }

    /// The results as markdown: the scenario table, the broker's reference, the replicas
    /// curve, the targets, the settings.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Stage two on the local cluster ({}, one KRaft node), {} records ({} for Python), \
             {:.0} bytes per input record, {} CPUs shared with the broker.\n",
            self.broker, self.records, self.python_sample, self.bytes_per_record, self.cpus
        );
        let fixed = self
            .fixed_rate()
            .map_or("the fixed rate".to_string(), |r| format!("{r}/s"));
        let _ = writeln!(
            md,
            "| Scenario | Records | Records/s | MB/s | CPU s per M records | Peak RSS MB | \
             Latency at {fixed}, p50 / p99 / p99.9 ms | Latency at half max: rate, p50 / p99 / p99.9 ms |"
        );
        md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.scenarios {
            let t = &r.throughput;
            let at_fixed = r.latency.as_ref().map_or("n/a".into(), percentiles);
            let at_half = r.latency_half_max.as_ref().map_or("n/a".into(), |l| {
                format!("{}/s: {}", l.rate, percentiles(l))
            });
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} |",
                r.label,
                t.records,
                t.records_per_second,
                t.mb_per_second,
                t.cpu_seconds_per_million,
                t.peak_rss_mb,
                at_fixed,
                at_half
            );
        }
        md.push('\n');
        for r in &self.scenarios {
            if let Some(why) = &r.latency_skipped {
                let _ = writeln!(md, "- {}: latency at {fixed} not measured: {why}", r.label);
            }
            if let Some(why) = &r.latency_half_max_skipped {
                let _ = writeln!(md, "- {}: latency at half max not measured: {why}", r.label);
            }
            for l in [&r.latency, &r.latency_half_max].into_iter().flatten() {
                if l.achieved_rate < 0.95 * l.rate as f64 {
                    let _ = writeln!(
                        md,
                        "- {}: the load producer reached {:.0} of {} records/s",
                        r.label, l.achieved_rate, l.rate
                    );
                }
                if l.received < l.sent {
                    let _ = writeln!(
                        md,
                        "- {}: at {} records/s, {} of {} outputs arrived in time; the \
                         percentiles are of those",
                        r.label, l.rate, l.received, l.sent
                    );
                }
            }
        }
        if let Some(l) = self
            .scenarios
            .iter()
            .find_map(|r| r.latency.as_ref().or(r.latency_half_max.as_ref()))
        {
            let _ = writeln!(
                md,
                "\nLatency: {} s of input at each rate into the running stage once it has caught \
                 up with its input; hop time from handing a record to the producer to its output \
                 reaching a consumer. Half max is half of the scenario's own records/s above.",
                l.seconds
            );
        }
        if let Some(b) = &self.broker_reference {
            let _ = writeln!(
                md,
                "\nThe broker's reference: Kafka's own tools on the same broker, {} records of {} \
                 bytes (no key) into a fresh {}-partition topic, producer `{}`, JVM `{}`.\n",
                b.records,
                b.record_size,
                b.partitions,
                b.producer_properties.join(" "),
                b.jvm_options
            );
            md.push_str(
                "| Tool | Records | Records/s | MB/s | Notes |\n|---|---:|---:|---:|---|\n",
            );
            let p = &b.producer;
            let _ = writeln!(
                md,
                "| kafka-producer-perf-test | {} | {:.0} | {:.2} | send to acknowledgement: avg {:.1} ms, p50 {:.0} ms, p99 {:.0} ms, p99.9 {:.0} ms |",
                p.records, p.records_per_second, p.mb_per_second, p.avg_latency_ms, p.p50_ms, p.p99_ms, p.p999_ms
            );
            let c = &b.consumer;
            let _ = writeln!(
                md,
                "| kafka-consumer-perf-test | {} | {:.0} | {:.2} | while fetching; {:.0} records/s with its group join ({:.0} ms) |",
                c.records, c.fetch_records_per_second, c.fetch_mb_per_second, c.records_per_second, c.rebalance_ms
            );
        }
        if !self.replicas.is_empty() {
            let _ = writeln!(
                md,
                "\nReplicas: stage two on a fresh 4-partition input of {} records, each point \
                 timed from when every replica (thread) holds a partition; CPU summed over the \
                 processes, peak RSS of each process (the largest if several).\n",
                self.records
            );
            md.push_str(
                "| Replicas | Records/s | vs. 1 | CPU s per M records | Peak RSS MB per process |\n\
                 |---|---:|---:|---:|---:|\n",
            );
            for r in &self.replicas {
                let one = self
                    .replicas
                    .iter()
                    .find(|o| o.implementation == r.implementation && o.count == 1)
                    .map(|o| o.throughput.records_per_second);
                let _ = writeln!(
                    md,
                    "| {}{} | {:.0} | {} | {:.2} | {:.1} |",
                    r.implementation.label(r.count),
                    if r.window_all_assigned {
                        ""
                    } else {
                        " (timed from the first commit)"
                    },
                    r.throughput.records_per_second,
                    one.map_or("n/a".into(), |o| format!(
                        "{:.2}",
                        r.throughput.records_per_second / o
                    )),
                    r.throughput.cpu_seconds_per_million,
                    r.throughput.peak_rss_mb,
                );
            }
        }
        md.push_str("\n| Target | Goal | Measured | Met |\n|---|---|---:|---|\n");
        for t in &self.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                t.name,
                t.goal,
                t.value.map_or("n/a".into(), |v| format!("{v:.2}")),
                match t.met {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "not measured",
                }
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
             {} batches in flight, offsets committed after every output is acknowledged. \
             (b-eos): the same with `--exactly-once`, transactions of 100 ms of batches \
             (`--transaction-ms`; outputs and input offsets), its own transactional id.\n\
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

    /// Replica runs of one implementation, in count order.
    pub fn replica_runs(&self, implementation: Implementation) -> Vec<&ReplicaRun> {
        let mut runs: Vec<_> = self
            .replicas
            .iter()
            .filter(|r| r.implementation == implementation)
            .collect();
        runs.sort_by_key(|r| r.count);
        runs
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn latency(rate: u64, p50: f64, p99: f64, p999: f64) -> Latency {
        Latency {
            rate,
            seconds: 10,
            sent: rate * 10,
            received: rate * 10,
            p50_ms: p50,
            p99_ms: p99,
            p999_ms: p999,
            max_ms: p999 * 2.0,
            achieved_rate: rate as f64,
        }
    }

    pub(crate) fn result(scenario: Scenario, rate: f64, cpu: f64, rss: f64) -> ScenarioResult {
        ScenarioResult {
            scenario,
            label: scenario.label().to_string(),
            throughput: Throughput {
                records: 1_000_000,
                timed_records: 990_000,
                seconds: 990_000.0 / rate,
                records_per_second: rate,
                mb_per_second: rate * 67.0 / 1e6,
                cpu_seconds_per_million: cpu,
                peak_rss_mb: rss,
                startup_seconds: 0.5,
            },
            latency: None,
            latency_skipped: None,
            latency_half_max: None,
            latency_half_max_skipped: None,
        }
    }

    pub(crate) fn sample() -> Vec<ScenarioResult> {
        use Scenario::*;
        let mut plugin = result(Plugin, 170_000.0, 2.0, 24.0);
        plugin.latency = Some(latency(10_000, 4.0, 15.0, 40.0));
        plugin.latency_half_max = Some(latency(85_000, 9.0, 60.0, 120.0));
        let mut python = result(PythonPerRecord, 1_500.0, 160.0, 60.0);
        python.latency_skipped =
            Some("its throughput (1500 records/s) cannot sustain 10000 records/s".into());
        python.latency_half_max = Some(latency(750, 2.0, 5.0, 8.0));
        vec![
            result(Ceiling, 200_000.0, 1.5, 22.0),
            plugin,
            result(PluginEos, 120_000.0, 2.6, 25.0),
            result(Linked, 175_000.0, 1.9, 23.0),
            result(KafkaStreams, 100_000.0, 5.0, 200.0),
            result(KafkaStreamsEos, 60_000.0, 6.0, 210.0),
            python,
        ]
    }

    fn target<'a>(targets: &'a [Target], name: &str) -> &'a Target {
        targets
            .iter()
            .find(|t| t.name.starts_with(name))
            .unwrap_or_else(|| panic!("no target {name}"))
    }

    #[test]
    fn targets_are_the_issues_ratios() {
        let t = targets(&sample());
        assert_eq!(t.len(), 12);
        let check = |name: &str, goal: &str, value: f64, met: bool| {
            let t = target(&t, name);
            assert_eq!(t.goal, goal, "{name}");
            assert!(
                (t.value.unwrap() - value).abs() < 1e-9,
                "{name}: {:?}",
                t.value
            );
            assert_eq!(t.met, Some(met), "{name}");
        };
        check("(b)/(a) records/s", ">= 0.85", 0.85, true);
        check("(b)/(e) records/s", ">= 1.5", 1.7, true);
        check("(b)/(e) CPU s per M", "<= 0.5", 0.4, true);
        check("(b-eos)/(b) records/s", ">= 0.7", 120.0 / 170.0, true);
        check("(b-eos)/(e-eos) records/s", ">= 1.5", 2.0, true);
        check("(b)/(d) records/s", ">= 100", 170_000.0 / 1_500.0, true);
        check("(b) peak RSS, MB", "<= 30", 24.0, true);
        check("(b)/(e) peak RSS", "<= 0.25", 0.12, true);
        check(
            "(b) p99 hop latency at 10000 records/s",
            "<= 20",
            15.0,
            true,
        );
    }

    #[test]
    fn missed_and_unmeasured_targets() {
        let mut scenarios = sample();
        scenarios.retain(|r| r.scenario != Scenario::KafkaStreamsEos);
        scenarios[1].throughput.peak_rss_mb = 31.0;
        scenarios[1].latency = None;
        let t = targets(&scenarios);
        assert_eq!(t.len(), 12, "every target is listed, measured or not");
        // The sample has no Python scenario (f): its three targets are listed, unmeasured.
        for name in [
            "(f)/(d) records/s, Python flush",
            "(f)/(d) records/s, Python batched",
            "(f) peak RSS",
        ] {
            let python = target(&t, name);
            assert_eq!((python.value, python.met), (None, None), "{name}");
        }
        let eos = target(&t, "(b-eos)/(e-eos)");
        assert_eq!((eos.value, eos.met), (None, None));
        assert_eq!(target(&t, "(b) peak RSS, MB").met, Some(false));
        let latency = target(&t, "(b) p99 hop latency");
        assert_eq!((latency.value, latency.met), (None, None));
    }

    #[test]
    fn markdown_has_both_latencies_and_the_broker() {
        let mut report = Report {
            finished_at_unix: 0,
            cpus: 2,
            broker: "Apache Kafka 4.4.0".into(),
            records: 1_000_000,
            python_sample: 5000,
            bytes_per_record: 67.0,
            settings: Settings {
                producer: BTreeMap::new(),
                consumer: BTreeMap::new(),
                batch_size: 1000,
                batch_wait_ms: 5,
                max_in_flight_batches: 8,
                python: BTreeMap::new(),
                kstreams: BTreeMap::new(),
                latency_producer: BTreeMap::new(),
                latency_consumer: BTreeMap::new(),
            },
            scenarios: sample(),
            broker_reference: None,
            replicas: Vec::new(),
            targets: Vec::new(),
        };
        report.check_targets();
        let md = report.markdown();
        assert!(
            md.starts_with("Stage two on the local cluster (Apache Kafka 4.4.0, one KRaft node)")
        );
        assert!(md.contains("| (b) stage-host + libstage_two.so | 1000000 | 170000 | 11.39 | 2.00 | 24.0 | 4.0 / 15.0 / 40.0 | 85000/s: 9.0 / 60.0 / 120.0 |"), "{md}");
        assert!(md
            .contains("| (b-eos) stage-host + libstage_two.so, exactly-once | 1000000 | 120000 |"));
        assert!(md.contains("- (d) Python, flush per record: latency at 10000/s not measured: its throughput (1500 records/s) cannot sustain 10000 records/s"), "{md}");
        assert!(md.contains("| (b) p99 hop latency at 10000 records/s, ms | <= 20 | 15.00 | yes |"));
        assert!(!md.contains("tansu"));
        let svg = crate::svg::chart(&report);
        assert!(svg.contains("(b-eos) stage-host + libstage_two.so, exactly-once"));
        assert!(svg.contains("Apache Kafka 4.4.0"));
    }
}
