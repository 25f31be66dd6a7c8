//! Every call that may block the loop has a deadline the host enforces itself.
//!
//! A plugin call that never returns cannot be interrupted: its thread belongs to the plugin.
//! A Kafka client call may not return either: librdkafka waited without a bound in
//! `rd_kafka_send_offsets_to_transaction` for a transaction coordinator that went away during
//! a rolling restart, although the call was given a timeout, and an exactly-once stage hung
//! for good in silence (its process alive, its group member gone). So the loop marks each
//! such call with [`Watchdog::guard`], naming it and its limit, and a thread of its own
//! watches: a call past its limit turns `/health/live` to failing, logs one line naming the
//! call, and ends the process (exit 1), so that the supervisor or Kubernetes restarts it.
//! Nothing is lost: offsets are committed only after a batch is done, so the batch is read
//! again; under exactly-once the restarted process's producer fences the old transactional
//! id and aborts its open transaction, so nothing is duplicated either.

use crate::error::exit_code;
use crate::observe::Observer;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much longer than its own timeout a Kafka client call may take before the watchdog
/// gives up on it: librdkafka's timeouts are not exact under load.
pub const CLIENT_CALL_GRACE: Duration = Duration::from_secs(15);

/// The call in progress.
#[derive(Debug, Clone, Copy)]
struct Call {
    what: &'static str,
    started: Instant,
    limit: Duration,
}

/// Watches the calls the loop marks; cheap to clone (all clones watch the same calls).
#[derive(Clone)]
pub struct Watchdog {
    current: Arc<Mutex<Option<Call>>>,
    observer: Option<Arc<Observer>>,
}

impl Watchdog {
    /// Starts the watching thread. A call running past its limit ends the process with exit
    /// code 1 and one error line, after the `observer`'s liveness (if any) turned failing.
    pub fn start(observer: Option<Arc<Observer>>) -> Watchdog {
        let dog = Watchdog {
            current: Arc::new(Mutex::new(None)),
            observer,
        };
        let watched = dog.clone();
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let Some(call) = *watched.slot() else {
                    continue;
                };
                if call.started.elapsed() > call.limit {
                    watched.expired(call);
                }
            })
            .expect("the watchdog thread starts");
        dog
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Call>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expired(&self, call: Call) -> ! {
        if let Some(observer) = &self.observer {
            observer.health.set_failed();
        }
        tracing::error!(
            "{} did not return within {} s (hung?); exiting without committing what it was doing, which will be done again by the restarted process",
            call.what,
            call.limit.as_secs_f64()
        );
        std::process::exit(exit_code::RUN_FAILED);
    }

    /// Marks the call `what` in progress until the guard drops; it may take `limit`.
    pub fn guard(&self, what: &'static str, limit: Duration) -> CallGuard<'_> {
        *self.slot() = Some(Call {
            what,
            started: Instant::now(),
            limit,
        });
        CallGuard(self)
    }

    /// [`Watchdog::guard`] for a Kafka client call given `timeout`: it may take the timeout
    /// and [`CLIENT_CALL_GRACE`].
    pub fn client_call(&self, what: &'static str, timeout: Duration) -> CallGuard<'_> {
        self.guard(what, timeout + CLIENT_CALL_GRACE)
    }
}

/// A call in progress.
pub struct CallGuard<'a>(&'a Watchdog);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        *self.0.slot() = None;
    }
}
