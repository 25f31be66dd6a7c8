//! What a running stage process tells the outside about itself, besides its logs:
//! Prometheus metrics ([`metrics`]), liveness and readiness ([`health`]), consumer lag taken
//! from librdkafka's statistics ([`lag`]), and the HTTP endpoint serving them ([`server`]).
//!
//! One [`Observer`] per process is shared by the run loop (which counts), the consumer
//! context (which sees rebalances and statistics) and the HTTP server (which reads). Counting
//! is a few atomic additions per batch, so it is always on; only the endpoint is optional
//! (`--metrics-addr`).

pub mod health;
pub mod lag;
pub mod metrics;
pub mod server;

use health::Health;
use lag::ConsumerLag;
use metrics::StageMetrics;

use plugin_host::StageKind;
use std::collections::{BTreeMap, BTreeSet};

/// Everything a stage process observes about itself.
#[derive(Debug)]
pub struct Observer {
    /// Prometheus metrics.
    pub metrics: StageMetrics,
    /// Where the process is in its life (readiness).
    pub health: Health,
    /// Consumer lag per partition.
    pub lag: ConsumerLag,
}

impl Observer {
    /// The observer of a stage (or source) named `stage`, plugin version `version`.
    pub fn new(kind: StageKind, stage: &str, version: &str) -> Observer {
        Observer {
            metrics: StageMetrics::new(kind, stage, version),
            health: Health::default(),
            lag: ConsumerLag::default(),
        }
    }

    /// New lags of `topic`'s partitions, from a statistics callback; only the partitions the
    /// process `held` at that moment keep a lag.
    ///
    /// Why filter what librdkafka calls its assignment: a statistics document is made on
    /// librdkafka's thread and served later by the poll, so one made before a revocation can
    /// arrive after it and bring the revoked partitions' lag back, where it would stay as a
    /// lag no one is working off. The process's own record of what it holds is changed in the
    /// rebalance callback, on the thread that serves the document.
    pub fn update_lag(&self, topic: &str, mut lags: BTreeMap<i32, u64>, held: &BTreeSet<i32>) {
        lags.retain(|partition, _| held.contains(partition));
        self.metrics.set_lag(topic, &lags);
        self.lag.replace(lags);
    }

    /// `partitions` of `topic` were revoked: their lag is no longer this process's.
    pub fn forget_lag(&self, topic: &str, partitions: &[i32]) {
        self.lag.forget(partitions);
        self.metrics.set_lag(topic, &self.lag.snapshot());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag_series(observer: &Observer) -> Vec<String> {
        observer
            .metrics
            .encode()
            .lines()
            .filter(|line| line.starts_with("stage_host_consumer_lag{"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn only_held_partitions_keep_a_lag_across_a_revocation() {
        let observer = Observer::new(StageKind::Stage, "two", "1.0");
        let all = BTreeMap::from([(0, 4), (1, 3), (2, 0), (3, 0)]);
        observer.update_lag("in", all.clone(), &BTreeSet::from([0, 1, 2, 3]));
        assert_eq!(lag_series(&observer).len(), 4);

        // Partitions 0 and 1 are revoked; a document made before that is served after it.
        observer.forget_lag("in", &[0, 1]);
        observer.update_lag("in", all, &BTreeSet::from([2, 3]));
        let series = lag_series(&observer);
        assert_eq!(series.len(), 2, "{series:?}");
        assert!(
            series
                .iter()
                .all(|s| s.contains("partition=\"2\"") || s.contains("partition=\"3\"")),
            "{series:?}"
        );
        assert_eq!(observer.lag.total(), Some(0));
    }
}
