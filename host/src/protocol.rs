//! The words a stage process and its supervisor share: the counters a process keeps, why a
//! process failed, and the status lines it writes. Typed on both sides, so the supervisor
//! reads a process's failure from what the process says, not from its log.

use serde::{Deserialize, Serialize};

/// What a stage process has done so far. Counted by the runner, sent in `counters` status
/// lines, kept per process by the supervisor and shown by `pipeline status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Records consumed and taken into a batch (a source: 0). Each ends processed, skipped or
    /// dead-lettered, and is in flight until then: `records_in = processed + skipped +
    /// dead_lettered + in_flight` in every line.
    pub records_in: u64,
    /// Input records the plugin processed without failure (their outputs handed to the
    /// producer); absent from processes older than this field.
    #[serde(default)]
    pub processed: u64,
    /// Input records taken into a batch and not settled yet.
    #[serde(default)]
    pub in_flight: u64,
    /// Records produced to the output topic.
    pub records_out: u64,
    /// Failed records skipped by the error policy.
    pub skipped: u64,
    /// Failed records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Consumer lag summed over the assigned partitions whose lag is known; absent for a
    /// source, before the first commit, and from processes older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Jumps in the input's offsets that are not transaction markers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset_gaps: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a stage process ended with an error. One list, with the names the status line uses
/// and the exit codes a supervisor (or a container runtime) sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Bad arguments or configuration (exit 2).
    Config,
    /// The plugin is not one, is incompatible, or failed as a whole (exit 3).
    Plugin,
    /// The broker or registry could not be reached at start-up, or the input topic never
    /// appeared (exit 4).
    Unreachable,
    /// The cluster refused: an incompatible schema, a topic, an ACL (exit 5).
    Refused,
    /// A record failed under the `fail` policy, or too many failed (the circuit breaker)
    /// (exit 1).
    Record,
    /// Kafka could not deliver, the consumer stalled, or the offsets jumped under
    /// `--on-offset-gap fail` (exit 1).
    Run,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Config,
        FailureKind::Plugin,
        FailureKind::Unreachable,
        FailureKind::Refused,
        FailureKind::Record,
        FailureKind::Run,
    ];

    /// The exit code of a process that failed this way.
    pub fn exit_code(self) -> i32 {
        match self {
            FailureKind::Record | FailureKind::Run => 1,
            FailureKind::Config => 2,
            FailureKind::Plugin => 3,
            FailureKind::Unreachable => 4,
            FailureKind::Refused => 5,
        }
    }

    /// The kind of a failure of the cluster's services (the one mapping from
    /// [`confluent::Failure`]): no answer is `Unreachable`, a definite no is `Refused`.
    pub fn of(failure: confluent::Failure) -> FailureKind {
        match failure {
            confluent::Failure::Unreachable => FailureKind::Unreachable,
            confluent::Failure::Refused => FailureKind::Refused,
        }
    }

    /// The kind an exit code says, for a process that died without a status line.
    pub fn from_exit_code(code: i32) -> Option<FailureKind> {
        FailureKind::ALL
            .into_iter()
            .find(|k| k.exit_code() == code && *k != FailureKind::Record)
    }

    /// Whether restarting the same process with the same file and library can help: a bad
    /// configuration or library, or the cluster's refusal, will not heal by itself.
    pub fn heals_by_restart(self) -> bool {
        matches!(
            self,
            FailureKind::Unreachable | FailureKind::Record | FailureKind::Run
        )
    }

    /// The name in status lines and logs.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Config => "config",
            FailureKind::Plugin => "plugin",
            FailureKind::Unreachable => "unreachable",
            FailureKind::Refused => "refused",
            FailureKind::Record => "record",
            FailureKind::Run => "run",
        }
    }
}

/// One line of the status protocol: a JSON object with an `event` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StatusEvent {
    /// Loaded, constructed, topic and schema in place, consumer subscribed (a source: about
    /// to produce).
    Ready {
        /// The plugin's stage name.
        stage: String,
        /// The plugin's version.
        version: String,
        /// `stage` or `source`.
        kind: String,
    },
    /// The consumer got an assignment (possibly empty): it is a member of its group.
    Joined {
        /// Partitions assigned.
        partitions: usize,
    },
    /// Running totals.
    Counters(Counters),
    /// A record failed and the policy skipped or dead-lettered it (sent for the first such
    /// record, then at most once a second): what failed, in one line.
    RecordFailed {
        /// The failure line (`transform error at in[0]@42: ...`).
        reason: String,
    },
    /// A stop was requested: finishing the batch, flushing, committing, leaving the group.
    Draining,
    /// The process is about to exit with an error: why, in one line.
    Failed {
        /// What kind of failure (it decides the exit code).
        kind: FailureKind,
        /// The error line.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_json_line_each() {
        let line = serde_json::to_string(&StatusEvent::Joined { partitions: 2 }).unwrap();
        assert_eq!(line, r#"{"event":"joined","partitions":2}"#);
        let back: StatusEvent = serde_json::from_str(r#"{"event":"draining"}"#).unwrap();
        assert_eq!(back, StatusEvent::Draining);
        let failed = StatusEvent::Failed {
            kind: FailureKind::Refused,
            reason: "schema incompatible".into(),
        };
        let line = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            line,
            r#"{"event":"failed","kind":"refused","reason":"schema incompatible"}"#
        );
        assert_eq!(serde_json::from_str::<StatusEvent>(&line).unwrap(), failed);
    }

    #[test]
    fn counters_lines_without_the_newer_fields_still_read() {
        let old =
            r#"{"event":"counters","records_in":3,"records_out":2,"skipped":1,"dead_lettered":0}"#;
        let event: StatusEvent = serde_json::from_str(old).unwrap();
        let counters = Counters {
            records_in: 3,
            records_out: 2,
            skipped: 1,
            ..Counters::default()
        };
        assert_eq!(event, StatusEvent::Counters(counters));
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"counters","records_in":3,"processed":0,"in_flight":0,"records_out":2,"skipped":1,"dead_lettered":0}"#,
            "no lag, no gaps: no field"
        );
        let with = StatusEvent::Counters(Counters {
            lag: Some(7),
            offset_gaps: 1,
            ..Counters::default()
        });
        let line = serde_json::to_string(&with).unwrap();
        assert!(
            line.contains(r#""lag":7"#) && line.contains(r#""offset_gaps":1"#),
            "{line}"
        );
    }

    #[test]
    fn kinds_map_to_the_documented_exit_codes_and_back() {
        let codes: Vec<i32> = FailureKind::ALL.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes, [2, 3, 4, 5, 1, 1]);
        for code in 1..=5 {
            let kind = FailureKind::from_exit_code(code).expect("a kind");
            assert_eq!(kind.exit_code(), code);
        }
        assert!(!FailureKind::Refused.heals_by_restart());
        assert!(FailureKind::Run.heals_by_restart());
    }
}
