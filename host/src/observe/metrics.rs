//! The Prometheus metrics of one stage process, kept with the official client
//! (`prometheus-client`) and rendered in the Prometheus text format (0.0.4).
//!
//! Every name starts with `stage_host_`. A transforming stage has all of them; a source has
//! `records_out`, `errors` and `plugin_info` (it consumes nothing, so it has no input, lag or
//! rebalances). Error kinds are registered at 0 up front so a rate over them exists before
//! the first failure.

use plugin_host::StageKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// The `Content-Type` of [`StageMetrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Where a settled batch's failed records went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Skipped (policy skip).
    Skipped,
    /// Written to the dead-letter topic (policy dead-letter).
    DeadLettered,
}

/// The kinds of record failure of a transforming stage (as in dead-letter headers).
pub const STAGE_ERROR_KINDS: [&str; 4] = ["decode", "transform", "panic", "encode"];

/// A source's only failure: a poll that failed (it stops the source).
pub const SOURCE_ERROR_KIND: &str = "poll";

/// Upper bounds of the batch latency buckets, in seconds: 1 ms to about 16 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GapLabels {
    topic: String,
    partition: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    stage: String,
    kind: String,
    plugin_version: String,
    api_version: String,
}

/// The metrics, and the registry that renders them.
#[derive(Debug)]
pub struct StageMetrics {
    registry: Registry,
    records_in: Counter,
    records_processed: Counter,
    records_in_flight: Gauge,
    records_out: Counter,
    errors: Family<ErrorLabels, Counter>,
    skipped: Counter,
    dead_lettered: Counter,
    /// Held while one batch's records change their fate (taken in, or settled) and while the
    /// metrics are rendered, so a scrape sees each batch entirely before or entirely after:
    /// `records_in = records_processed + records_skipped + records_dead_lettered +
    /// records_in_flight`, and `errors` moves with the skips and dead letters it explains.
    fates: Mutex<()>,
    batch_latency: Histogram,
    consumer_lag: Family<PartitionLabels, Gauge>,
    assigned_partitions: Gauge,
    rebalances: Counter,
    uncommitted_partitions: Counter,
    offset_gaps: Family<GapLabels, Counter>,
    offset_gap_records: Family<GapLabels, Counter>,
    /// Partitions that have a lag series, to remove the ones that are gone.
    lag_partitions: Mutex<BTreeSet<i32>>,
}

impl StageMetrics {
    /// The metrics of a stage (or source) named `stage`, plugin version `version`.
    pub fn new(kind: StageKind, stage: &str, version: &str) -> StageMetrics {
        let mut registry = Registry::with_prefix("stage_host");
        let metrics = StageMetrics {
            records_in: Counter::default(),
            records_processed: Counter::default(),
            records_in_flight: Gauge::default(),
            fates: Mutex::default(),
            records_out: Counter::default(),
            errors: Family::default(),
            skipped: Counter::default(),
            dead_lettered: Counter::default(),
            batch_latency: Histogram::new(LATENCY_BUCKETS),
            consumer_lag: Family::default(),
            assigned_partitions: Gauge::default(),
            rebalances: Counter::default(),
            uncommitted_partitions: Counter::default(),
            offset_gaps: Family::default(),
            offset_gap_records: Family::default(),
            lag_partitions: Mutex::default(),
            registry: Registry::default(),
        };
        let info: Family<PluginLabels, Gauge> = Family::default();
        info.get_or_create(&PluginLabels {
            stage: stage.to_string(),
            kind: match kind {
                StageKind::Stage => "stage",
                StageKind::Source => "source",
            }
            .to_string(),
            plugin_version: version.to_string(),
            api_version: plugin_host::PLUGIN_API_VERSION.to_string(),
        })
        .set(1);
        registry.register(
            "plugin_info",
            "The plugin this process runs (always 1): stage name, kind, plugin version, plugin API version",
            info,
        );
        registry.register(
            "records_out",
            "Records produced to the output topic",
            metrics.records_out.clone(),
        );
        match kind {
            StageKind::Source => {
                metrics.count_error(SOURCE_ERROR_KIND, 0);
                registry.register(
                    "errors",
                    "Failed polls of the source (kind poll); one stops the source",
                    metrics.errors.clone(),
                );
            }
            StageKind::Stage => {
                for kind in STAGE_ERROR_KINDS {
                    metrics.count_error(kind, 0);
                }
                registry.register(
                    "records_in",
                    "Records consumed from the input topic and taken into a batch; each ends processed, skipped or dead-lettered, and is in flight until then",
                    metrics.records_in.clone(),
                );
                registry.register(
                    "records_processed",
                    "Input records the plugin processed without failure, their outputs (zero or more) handed to the producer",
                    metrics.records_processed.clone(),
                );
                registry.register(
                    "records_in_flight",
                    "Input records taken into a batch and not settled yet (processed, skipped or dead-lettered)",
                    metrics.records_in_flight.clone(),
                );
                registry.register(
                    "errors",
                    "Records that failed, by kind: decode, transform, panic, encode (whatever the error policy did with them)",
                    metrics.errors.clone(),
                );
                registry.register(
                    "records_skipped",
                    "Failed records skipped (policy skip)",
                    metrics.skipped.clone(),
                );
                registry.register(
                    "records_dead_lettered",
                    "Failed records written to the dead-letter topic (policy dead-letter)",
                    metrics.dead_lettered.clone(),
                );
                registry.register(
                    "batch_latency_seconds",
                    "Seconds from a batch's first record being consumed to its last output handed to the producer: batch fill wait, plugin call and framing, not the broker's acknowledgement",
                    metrics.batch_latency.clone(),
                );
                registry.register(
                    "consumer_lag",
                    "Records in an assigned partition after the group's committed offset (from librdkafka statistics, refreshed every second; absent until the first commit)",
                    metrics.consumer_lag.clone(),
                );
                registry.register(
                    "assigned_partitions",
                    "Input partitions assigned to this process",
                    metrics.assigned_partitions.clone(),
                );
                registry.register(
                    "rebalances",
                    "Partition assignments received from the consumer group (one per rebalance this process took part in)",
                    metrics.rebalances.clone(),
                );
                registry.register(
                    "uncommitted_partitions",
                    "Partitions whose final commit, before they were handed over (revoked) or before the process stopped, failed: their records after the last commit are read again by the next reader",
                    metrics.uncommitted_partitions.clone(),
                );
                registry.register(
                    "offset_gaps",
                    "Jumps in the offsets delivered from an input partition, by likely reason: transaction_marker, aborted_transaction, compaction, seek, unknown",
                    metrics.offset_gaps.clone(),
                );
                registry.register(
                    "offset_gap_records",
                    "Offsets skipped over by those jumps, by likely reason",
                    metrics.offset_gap_records.clone(),
                );
            }
        }
        StageMetrics {
            registry,
            ..metrics
        }
    }

    /// A batch of `n` records was taken in: they are in flight until settled.
    pub fn batch_taken(&self, n: u64) {
        let _fates = self.fates.lock().unwrap_or_else(|e| e.into_inner());
        self.records_in.inc_by(n);
        self.records_in_flight.inc_by(n as i64);
    }

    /// A batch taken in was settled in one step: `processed` records went through the plugin,
    /// the failures (each of its kind) were skipped or dead-lettered as `outcome` says, and
    /// the batch's outputs (`produced`) went to the producer.
    pub fn batch_settled<'k>(
        &self,
        processed: u64,
        failure_kinds: impl ExactSizeIterator<Item = &'k str>,
        outcome: FailureOutcome,
        produced: u64,
    ) {
        let _fates = self.fates.lock().unwrap_or_else(|e| e.into_inner());
        let failed = failure_kinds.len() as u64;
        for kind in failure_kinds {
            self.count_error(kind, 1);
        }
        match outcome {
            FailureOutcome::Skipped => self.skipped.inc_by(failed),
            FailureOutcome::DeadLettered => self.dead_lettered.inc_by(failed),
        };
        self.records_processed.inc_by(processed);
        self.records_in_flight.dec_by((processed + failed) as i64);
        self.records_out.inc_by(produced);
    }

    /// A batch failed under the `fail` policy: its failures are counted by kind; its records
    /// stay in flight (the stage stops, and they are read again after a restart).
    pub fn batch_failed<'k>(&self, failure_kinds: impl Iterator<Item = &'k str>) {
        let _fates = self.fates.lock().unwrap_or_else(|e| e.into_inner());
        for kind in failure_kinds {
            self.count_error(kind, 1);
        }
    }

    /// `n` records produced.
    pub fn records_out(&self, n: u64) {
        self.records_out.inc_by(n);
    }

    /// One record (a source: a poll) failed with `kind`.
    pub fn error(&self, kind: &str) {
        self.count_error(kind, 1);
    }

    fn count_error(&self, kind: &str, n: u64) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
            })
            .inc_by(n);
    }

    /// A jump over `skipped` offsets of `topic[partition]`, for `reason`.
    pub fn offset_gap(&self, topic: &str, partition: i32, reason: &str, skipped: u64) {
        let labels = GapLabels {
            topic: topic.to_string(),
            partition: partition.to_string(),
            reason: reason.to_string(),
        };
        self.offset_gaps.get_or_create(&labels).inc();
        self.offset_gap_records
            .get_or_create(&labels)
            .inc_by(skipped);
    }

    /// A batch went from first record consumed to last output handed over in `elapsed`.
    pub fn batch_latency(&self, elapsed: Duration) {
        self.batch_latency.observe(elapsed.as_secs_f64());
    }

    /// The consumer got an assignment; it now holds `partitions` partitions.
    pub fn assigned(&self, partitions: usize) {
        self.rebalances.inc();
        self.assigned_partitions.set(partitions as i64);
    }

    /// The final commit of `n` partitions, before a hand-over or a stop, failed.
    pub fn uncommitted_partitions(&self, n: u64) {
        self.uncommitted_partitions.inc_by(n);
    }

    /// Partitions were revoked; the consumer now holds `partitions` partitions.
    pub fn revoked(&self, partitions: usize) {
        self.assigned_partitions.set(partitions as i64);
    }

    /// Sets the lag of `topic`'s partitions to `lags`, dropping partitions not in it.
    pub fn set_lag(&self, topic: &str, lags: &BTreeMap<i32, u64>) {
        let labels = |partition: i32| PartitionLabels {
            topic: topic.to_string(),
            partition: partition.to_string(),
        };
        // Remove what is gone, then set the rest, so a scrape never sees a partition vanish
        // and come back.
        let mut shown = self
            .lag_partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for &partition in shown.iter().filter(|p| !lags.contains_key(p)) {
            self.consumer_lag.remove(&labels(partition));
        }
        for (&partition, &lag) in lags {
            self.consumer_lag
                .get_or_create(&labels(partition))
                .set(lag as i64);
        }
        *shown = lags.keys().copied().collect();
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let _fates = self.fates.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
