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
use std::collections::BTreeMap;

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

    /// New lags of `topic`'s assigned partitions, from a statistics callback.
    pub fn update_lag(&self, topic: &str, lags: BTreeMap<i32, u64>) {
        self.metrics.set_lag(topic, &lags);
        self.lag.replace(lags);
    }

    /// `partitions` of `topic` were revoked: their lag is no longer this process's.
    pub fn forget_lag(&self, topic: &str, partitions: &[i32]) {
        self.lag.forget(partitions);
        self.metrics.set_lag(topic, &self.lag.snapshot());
    }
}
