//! Consumer lag per partition, from librdkafka's statistics.
//!
//! Why statistics rather than asking for watermarks: librdkafka already tracks, per assigned
//! partition, the high watermark from every fetch response and the group's committed offset,
//! and reports their difference (`consumer_lag`) on the `statistics.interval.ms` callback. So
//! lag costs no broker round trip and nothing on the batch path, and it is measured against
//! the *committed* offset: a record counts as done only once its outputs were acknowledged
//! and its offset committed, which is the stage's at-least-once promise. Querying watermarks
//! would add a request per partition on the consumer's thread. The price is freshness (one
//! statistics interval) and that a partition's lag is unknown until the group's first commit
//! on it; such partitions are left out rather than shown as 0.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// How often librdkafka emits statistics when lag is observed.
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// The latest lag of each assigned partition whose lag is known.
#[derive(Debug, Default)]
pub struct ConsumerLag(Mutex<BTreeMap<i32, u64>>);

impl ConsumerLag {
    /// Replaces every partition's lag with `lags`.
    pub fn replace(&self, lags: BTreeMap<i32, u64>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = lags;
    }

    /// Forgets `partitions` (revoked: another process owns their lag now).
    pub fn forget(&self, partitions: &[i32]) {
        let mut lags = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for partition in partitions {
            lags.remove(partition);
        }
    }

    /// A copy of the current lags.
    pub fn snapshot(&self) -> BTreeMap<i32, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The sum over known partitions, or `None` while no partition's lag is known.
    pub fn total(&self) -> Option<u64> {
        let lags = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (!lags.is_empty()).then(|| lags.values().sum())
    }
}

/// The parts of librdkafka's statistics JSON read here (it has many more).
#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    topics: HashMap<String, TopicStatistics>,
}

#[derive(Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: HashMap<String, PartitionStatistics>,
}

#[derive(Deserialize)]
struct PartitionStatistics {
    partition: i32,
    #[serde(default)]
    desired: bool,
    #[serde(default = "unknown")]
    consumer_lag: i64,
}

fn unknown() -> i64 {
    -1
}

/// The lag of each partition of `topic` this consumer is assigned and whose lag is known,
/// from one statistics document. librdkafka lists partition -1 (its internal unassigned
/// queue), partitions it knows from metadata but does not consume (`desired` false), and
/// `consumer_lag` -1 where no offset is committed yet; all of those are left out.
pub fn parse_statistics(json: &[u8], topic: &str) -> Result<BTreeMap<i32, u64>, String> {
    let stats: Statistics = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(stats
        .topics
        .get(topic)
        .into_iter()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.partition >= 0 && p.desired && p.consumer_lag >= 0)
        .map(|p| (p.partition, p.consumer_lag as u64))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_assigned_partitions_with_a_known_lag() {
        let json = br#"{"name":"rdkafka#consumer-1","type":"consumer","brokers":{},
            "topics":{
              "in":{"topic":"in","partitions":{
                "0":{"partition":0,"desired":true,"consumer_lag":5,"hi_offset":10},
                "1":{"partition":1,"desired":true,"consumer_lag":-1},
                "2":{"partition":2,"desired":false,"consumer_lag":7},
                "-1":{"partition":-1,"desired":false,"consumer_lag":-1}}},
              "other":{"topic":"other","partitions":{
                "0":{"partition":0,"desired":true,"consumer_lag":99}}}}}"#;
        let lags = parse_statistics(json, "in").unwrap();
        assert_eq!(lags, BTreeMap::from([(0, 5)]));
        assert!(parse_statistics(b"{}", "in").unwrap().is_empty());
        assert!(parse_statistics(b"not json", "in").is_err());
    }

    #[test]
    fn total_is_unknown_until_a_partition_is_known() {
        let lag = ConsumerLag::default();
        assert_eq!(lag.total(), None);
        lag.replace(BTreeMap::from([(0, 3), (1, 4)]));
        assert_eq!(lag.total(), Some(7));
        lag.forget(&[0]);
        assert_eq!(lag.total(), Some(4));
    }
}
