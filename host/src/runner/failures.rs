//! What happens to a batch's failed records: the error policy (`fail` stops the stage,
//! `skip` counts and goes on, `dead-letter` sends the original to the dead-letter topic with
//! headers saying what failed), and the circuit breaker over recent records, which stops a
//! stage whose records mostly fail instead of skipping or dead-lettering a whole topic.
//!
//! Pure: the router decides, the loop sends.

use super::batch::{FailedRecord, Original};
use super::RunError;
use crate::breaker::CircuitBreaker;
use crate::policy::ErrorPolicy;
use rdkafka::message::{Header, OwnedHeaders};

/// Where a stage's failures go, and the names its dead letters carry.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// The error policy.
    pub policy: ErrorPolicy,
    /// The breaker's window of recent records, and the failure share that trips it.
    pub failure_window: usize,
    /// See `failure_window`.
    pub max_failure_ratio: f64,
    /// The input topic (named in every failure line and dead letter).
    pub input_topic: String,
    /// The stage's name and plugin version, for dead-letter headers.
    pub stage_name: String,
    /// See `stage_name`.
    pub plugin_version: String,
}

/// Applies the error policy and the breaker, batch by batch.
pub struct FailureRouter {
    settings: RouterSettings,
    breaker: CircuitBreaker,
}

/// What to do with one failed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Log and count it.
    Skip,
    /// Send its original to the dead-letter topic.
    DeadLetter,
}

/// The batch's outcomes in the order its records were consumed: `false` at each failure's
/// `consumed_index`.
fn outcomes_in_record_order(consumed: usize, failed: &[FailedRecord]) -> Vec<bool> {
    let mut outcomes = vec![true; consumed];
    for failure in failed {
        if let Some(outcome) = outcomes.get_mut(failure.consumed_index) {
            *outcome = false;
        }
    }
    outcomes
}

impl FailureRouter {
    /// A router with an empty breaker window.
    pub fn new(settings: RouterSettings) -> FailureRouter {
        let breaker = CircuitBreaker::new(settings.failure_window, settings.max_failure_ratio);
        FailureRouter { settings, breaker }
    }

    /// Decides for a batch of `consumed` records of which `failed` failed: `Err` stops the
    /// stage before anything of the batch is produced (the `fail` policy's first failure, or
    /// the tripped breaker); otherwise every failure takes the returned route.
    pub fn route(&mut self, consumed: usize, failed: &[FailedRecord]) -> Result<Route, RunError> {
        if let (ErrorPolicy::Fail, Some(first)) = (self.settings.policy, failed.first()) {
            return Err(RunError::RecordFailed(self.describe(first)));
        }
        if let Some(ratio) = self
            .breaker
            .record(outcomes_in_record_order(consumed, failed))
        {
            return Err(RunError::CircuitOpen(format!(
                "{:.0}% of the last {} records failed (limit {:.0}%); last: {}",
                ratio * 100.0,
                self.settings.failure_window,
                self.settings.max_failure_ratio * 100.0,
                self.describe(failed.last().expect("failures tripped it"))
            )));
        }
        Ok(match self.settings.policy {
            ErrorPolicy::DeadLetter => Route::DeadLetter,
            _ => Route::Skip,
        })
    }

    /// One line naming the record and what failed: `decode error at in[0]@42: ...`.
    pub fn describe(&self, failure: &FailedRecord) -> String {
        format!(
            "{} error at {}[{}]@{}: {}",
            failure.kind,
            self.settings.input_topic,
            failure.position.partition,
            failure.position.offset,
            failure.message
        )
    }

    /// The headers of a dead letter: the original's, then what failed, where, and when
    /// (`now_ms`, milliseconds since the epoch).
    pub fn dead_letter_headers(
        &self,
        failure: &FailedRecord,
        original: &Original,
        now_ms: u128,
    ) -> OwnedHeaders {
        let partition = failure.position.partition.to_string();
        let offset = failure.position.offset.to_string();
        let now = now_ms.to_string();
        let mut headers = original.headers.clone().unwrap_or_default();
        for (key, value) in [
            ("stage.name", self.settings.stage_name.as_str()),
            (
                "stage.plugin.version",
                self.settings.plugin_version.as_str(),
            ),
            ("stage.error.kind", failure.kind),
            ("stage.error.message", failure.message.as_str()),
            ("stage.source.topic", self.settings.input_topic.as_str()),
            ("stage.source.partition", partition.as_str()),
            ("stage.source.offset", offset.as_str()),
            ("stage.failed.at.ms", now.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_host::RecordPosition;
    use rdkafka::message::Headers;

    fn settings(policy: ErrorPolicy) -> RouterSettings {
        RouterSettings {
            policy,
            failure_window: 10,
            max_failure_ratio: 0.5,
            input_topic: "in".into(),
            stage_name: "two".into(),
            plugin_version: "1.0".into(),
        }
    }

    fn failure(index: usize, offset: i64) -> FailedRecord {
        FailedRecord {
            consumed_index: index,
            position: RecordPosition {
                partition: 0,
                offset,
                timestamp_ms: 0,
            },
            kind: "transform",
            message: "no".into(),
        }
    }

    #[test]
    fn fail_stops_at_the_first_failure_and_names_it() {
        let mut router = FailureRouter::new(settings(ErrorPolicy::Fail));
        assert_eq!(router.route(3, &[]).unwrap(), Route::Skip);
        let err = router
            .route(3, &[failure(1, 41), failure(2, 42)])
            .unwrap_err();
        assert!(
            err.to_string().contains("transform error at in[0]@41: no"),
            "{err}"
        );
    }

    #[test]
    fn skip_and_dead_letter_route_until_the_breaker_trips() {
        let mut router = FailureRouter::new(settings(ErrorPolicy::DeadLetter));
        assert_eq!(
            router.route(10, &[failure(0, 0)]).unwrap(),
            Route::DeadLetter
        );
        let mut skip = FailureRouter::new(settings(ErrorPolicy::Skip));
        assert_eq!(skip.route(10, &[failure(0, 0)]).unwrap(), Route::Skip);
        let all: Vec<FailedRecord> = (0..10).map(|i| failure(i, i as i64)).collect();
        let err = skip.route(10, &all).unwrap_err();
        assert!(matches!(err, RunError::CircuitOpen(_)), "{err}");
    }

    #[test]
    fn every_eighth_record_failing_in_default_batches_does_not_trip_the_default_breaker() {
        // 12.5% bad records, batches of 1,000 (larger than the window of 200): the window
        // sees them as they came, 25 of every 200, not as 125 failures in a row.
        let mut router = FailureRouter::new(RouterSettings {
            failure_window: 200,
            ..settings(ErrorPolicy::Skip)
        });
        for batch in 0..20 {
            let failed: Vec<FailedRecord> = (0..1000)
                .filter(|i| i % 8 == 7)
                .map(|i| failure(i, (batch * 1000 + i) as i64))
                .collect();
            assert_eq!(router.route(1000, &failed).unwrap(), Route::Skip);
        }
    }

    #[test]
    fn dead_letters_keep_the_original_headers_and_say_what_failed() {
        let router = FailureRouter::new(settings(ErrorPolicy::DeadLetter));
        let original = Original {
            headers: Some(OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some("t1"),
            })),
            ..Original::default()
        };
        let headers = router.dead_letter_headers(&failure(0, 7), &original, 99);
        let get = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("trace").as_deref(), Some("t1"));
        assert_eq!(get("stage.source.offset").as_deref(), Some("7"));
        assert_eq!(get("stage.error.kind").as_deref(), Some("transform"));
        assert_eq!(get("stage.failed.at.ms").as_deref(), Some("99"));
    }
}
