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

pub use crate::protocol::{Counters, StatusEvent};
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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
    if matches!(event, StatusEvent::Counters(_)) {
        reporter.last_counters = Some(Instant::now());
        reporter.last_sent = Some(event.clone());
    }
    let mut line = serde_json::to_string(event).expect("an event serializes");
    line.push('\n');
    let _ = reporter.out.write_all(line.as_bytes());
}

/// Reports `stats` and `lag`, at most every 250 ms, and only when something changed (an idle
/// stage is still called, so a lag that falls to 0 after the last batch is reported).
pub fn counters(counters: &Counters, lag: Option<u64>) {
    let Some(reporter) = REPORTER.get() else {
        return;
    };
    let event = StatusEvent::Counters(Counters { lag, ..*counters });
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

/// Reports a record the policy skipped or dead-lettered: the first at once, then at most one a
/// second (a supervisor needs the reason, not every line).
pub fn record_failed(reason: &str) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    if REPORTER.get().is_none() {
        return;
    }
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        *last = Some(Instant::now());
        report(&StatusEvent::RecordFailed {
            reason: reason.to_string(),
        });
    }
}
