//! The status line protocol from a stage process to the supervisor that started it.
//!
//! A supervisor passes `--status-fd N` (the write end of a pipe it reads). The stage writes one
//! JSON object per line to that descriptor: `ready` once it is subscribed (or, for a source,
//! about to produce), `joined` on every partition assignment, `counters` at most every 250 ms
//! while records flow, and `draining` when a stop begins. Without `--status-fd` every call
//! here does nothing, so a stage run by hand or in a container behaves as before.
//!
//! A pipe rather than a status file: the supervisor learns of a state change at once, needs
//! no polling, and sees end-of-file when the process dies.

use crate::runner::Stats;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One line of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StatusEvent {
    /// Loaded, constructed, topic and schema in place, consumer subscribed.
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
    Counters {
        /// Records consumed.
        records_in: u64,
        /// Records produced.
        records_out: u64,
        /// Records skipped by the error policy.
        skipped: u64,
        /// Records sent to the dead-letter topic.
        dead_lettered: u64,
        /// Consumer lag summed over the assigned partitions whose lag is known; absent for a
        /// source, before the first commit, and from stage processes older than this field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lag: Option<u64>,
        #[serde(default, skip_serializing_if = "is_zero")]
        offset_gaps: u64,
    },
    /// A stop was requested: finishing the batch, flushing, committing, leaving the group.
    Draining,
}

impl StatusEvent {
    /// The counters event for `stats` and consumer lag `lag`.
    pub fn counters(stats: &Stats, lag: Option<u64>) -> Self {
        StatusEvent::Counters {
            records_in: stats.records_in,
            records_out: stats.records_out,
            skipped: stats.skipped,
            dead_lettered: stats.dead_lettered,
            lag,
            offset_gaps: stats.offset_gaps,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

struct Reporter {
    out: File,
    last_counters: Option<Instant>,
    /// The last counters sent, so an idle stage does not repeat itself.
    last_sent: Option<StatusEvent>,
}

static REPORTER: OnceLock<Mutex<Reporter>> = OnceLock::new();

const COUNTERS_EVERY: Duration = Duration::from_millis(250);

/// Starts reporting to descriptor `fd` (inherited from the supervisor). Call once, early.
pub fn init(fd: Option<i32>) {
    if let Some(fd) = fd {
        // SAFETY: the supervisor opened `fd` for this process and nothing else here uses it.
        let out = unsafe { File::from_raw_fd(fd) };
        let _ = REPORTER.set(Mutex::new(Reporter {
            out,
            last_counters: None,
            last_sent: None,
        }));
    }
}

/// Reports `event`. Write errors are ignored: a gone supervisor must not stop the stage.
pub fn report(event: &StatusEvent) {
    let Some(reporter) = REPORTER.get() else {
        return;
    };
    let mut reporter = reporter.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(event, StatusEvent::Counters { .. }) {
        reporter.last_counters = Some(Instant::now());
        reporter.last_sent = Some(event.clone());
    }
    let mut line = serde_json::to_string(event).expect("an event serializes");
    line.push('\n');
    let _ = reporter.out.write_all(line.as_bytes());
}

/// Reports `stats` and `lag`, at most every 250 ms, and only when something changed (an idle
/// stage is still called, so a lag that falls to 0 after the last batch is reported).
pub fn counters(stats: &Stats, lag: Option<u64>) {
    let Some(reporter) = REPORTER.get() else {
        return;
    };
    let event = StatusEvent::counters(stats, lag);
    let due = reporter
        .lock()
        .map(|r| {
            r.last_counters
                .is_none_or(|t| t.elapsed() >= COUNTERS_EVERY)
                && r.last_sent.as_ref() != Some(&event)
        })
        .unwrap_or(false);
    if due {
        report(&event);
    }
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
    }

    #[test]
    fn counters_without_lag_read_as_before() {
        let old =
            r#"{"event":"counters","records_in":3,"records_out":2,"skipped":1,"dead_lettered":0}"#;
        let event: StatusEvent = serde_json::from_str(old).unwrap();
        assert_eq!(
            event,
            StatusEvent::counters(
                &Stats {
                    records_in: 3,
                    records_out: 2,
                    skipped: 1,
                    dead_lettered: 0,
                    offset_gaps: 0,
                },
                None
            )
        );
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            old,
            "no lag, no field"
        );
        let with_lag =
            serde_json::to_string(&StatusEvent::counters(&Stats::default(), Some(7))).unwrap();
        assert!(with_lag.ends_with(r#""lag":7}"#), "{with_lag}");
    }
}
