//! What the supervisor does when a stage process exits: nothing (it was told to stop, or a
//! source finished), restart it after a backoff that doubles with each crash, or give the
//! pipeline's start up because a restart cannot help.
//!
//! A pure state machine, per process, so its rules are tested without processes: a failure
//! that does not heal by restarting (a bad configuration or library, the cluster's refusal)
//! while the pipeline is still starting that stage fails the start; anything else restarts,
//! 0.5 s first, doubling to 30 s, back to 0.5 s after a run of a minute or more; five crashes
//! within a minute are a crash loop, reported but still retried.

use crate::protocol::FailureKind;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// First restart delay.
pub const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long before crashing restarts with the first delay again.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// This many crashes within [`CRASH_LOOP_WINDOW`] is a crash loop.
pub const CRASH_LOOP_CRASHES: usize = 5;
/// See [`CRASH_LOOP_CRASHES`].
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(60);

/// What is known of an exit when it happens.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// Exit code 0.
    pub success: bool,
    /// The supervisor had asked the process to stop.
    pub stop_requested: bool,
    /// Why it failed, from its `failed` status line or its exit code.
    pub kind: Option<FailureKind>,
    /// How long this incarnation ran.
    pub uptime: Duration,
    /// Whether it ever reported ready.
    pub was_ready: bool,
    /// Whether the pipeline is still starting this stage, and no other replica of it is
    /// ready: a failure now is a failure of the start.
    pub stage_starting: bool,
    /// Whether it serves its stage (not a candidate of a swap, which the swap judges).
    pub serving: bool,
    /// Whether the whole pipeline is stopping.
    pub pipeline_stopping: bool,
}

/// What to do after an exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterExit {
    /// It was told to stop: forget it.
    Stopped,
    /// It finished on its own (a source that emitted everything).
    Finished,
    /// Restart it after `after`; `crash_loop` if it crashed often lately.
    Restart {
        /// The delay.
        after: Duration,
        /// Whether this is a crash loop.
        crash_loop: bool,
    },
    /// The pipeline's start fails: restarting cannot help.
    FailStart,
    /// Leave it crashed (a swap candidate; or the pipeline is stopping).
    LeaveCrashed,
}

/// The restart state of one process, across its incarnations.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    backoff: Duration,
    crashes: VecDeque<Instant>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff: BACKOFF_START,
            crashes: VecDeque::new(),
        }
    }
}

impl RestartPolicy {
    /// Decides what the exit `exit` at `now` means, and updates the backoff.
    pub fn after_exit(&mut self, exit: Exit, now: Instant) -> AfterExit {
        if exit.stop_requested {
            return AfterExit::Stopped;
        }
        if exit.success {
            return AfterExit::Finished;
        }
        let permanent = exit.kind.is_some_and(|k| !k.heals_by_restart());
        if permanent && !exit.was_ready && exit.stage_starting && exit.serving {
            return AfterExit::FailStart;
        }
        if !exit.serving || exit.pipeline_stopping {
            return AfterExit::LeaveCrashed;
        }
        if exit.uptime >= STABLE_AFTER {
            self.backoff = BACKOFF_START;
        }
        let after = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.crashes.push_back(now);
        while self.crashes.len() > CRASH_LOOP_CRASHES {
            self.crashes.pop_front();
        }
        AfterExit::Restart {
            after,
            crash_loop: self.crash_loop(now),
        }
    }

    /// Whether it crashed [`CRASH_LOOP_CRASHES`] times within [`CRASH_LOOP_WINDOW`] of `now`.
    pub fn crash_loop(&self, now: Instant) -> bool {
        self.crashes
            .iter()
            .filter(|t| now.duration_since(**t) < CRASH_LOOP_WINDOW)
            .count()
            >= CRASH_LOOP_CRASHES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(kind: Option<FailureKind>, uptime_secs: u64) -> Exit {
        Exit {
            success: false,
            stop_requested: false,
            kind,
            uptime: Duration::from_secs(uptime_secs),
            was_ready: true,
            stage_starting: false,
            serving: true,
            pipeline_stopping: false,
        }
    }

    fn restart_after(decision: AfterExit) -> Duration {
        match decision {
            AfterExit::Restart { after, .. } => after,
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_stable_run() {
        let mut policy = RestartPolicy::default();
        let t0 = Instant::now();
        let delays: Vec<u64> = (0..8)
            .map(|i| {
                restart_after(policy.after_exit(crash(None, 1), t0 + Duration::from_secs(i * 100)))
                    .as_millis() as u64
            })
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        let after_stable = policy.after_exit(crash(None, 60), t0 + Duration::from_secs(900));
        assert_eq!(restart_after(after_stable), BACKOFF_START);
    }

    #[test]
    fn five_crashes_within_a_minute_are_a_crash_loop() {
        let mut policy = RestartPolicy::default();
        let t0 = Instant::now();
        for i in 0..4 {
            let decision = policy.after_exit(crash(None, 1), t0 + Duration::from_secs(i));
            assert!(matches!(
                decision,
                AfterExit::Restart {
                    crash_loop: false,
                    ..
                }
            ));
        }
        let fifth = policy.after_exit(crash(None, 1), t0 + Duration::from_secs(4));
        assert!(matches!(
            fifth,
            AfterExit::Restart {
                crash_loop: true,
                ..
            }
        ));
        assert!(
            !policy.crash_loop(t0 + Duration::from_secs(120)),
            "old crashes age out"
        );
    }

    #[test]
    fn a_failure_no_restart_heals_fails_the_start_but_only_while_starting() {
        for kind in [
            FailureKind::Config,
            FailureKind::Plugin,
            FailureKind::Refused,
        ] {
            let mut policy = RestartPolicy::default();
            let starting = Exit {
                was_ready: false,
                stage_starting: true,
                ..crash(Some(kind), 1)
            };
            assert_eq!(
                policy.after_exit(starting, Instant::now()),
                AfterExit::FailStart
            );
            // Once the stage ran, the same failure is retried (an ACL may be fixed).
            let later = policy.after_exit(crash(Some(kind), 1), Instant::now());
            assert!(matches!(later, AfterExit::Restart { .. }), "{later:?}");
        }
        let mut policy = RestartPolicy::default();
        let unreachable = Exit {
            was_ready: false,
            stage_starting: true,
            ..crash(Some(FailureKind::Unreachable), 1)
        };
        assert!(matches!(
            policy.after_exit(unreachable, Instant::now()),
            AfterExit::Restart { .. }
        ));
    }

    #[test]
    fn stops_finishes_candidates_and_a_stopping_pipeline_are_not_restarted() {
        let mut policy = RestartPolicy::default();
        let now = Instant::now();
        let stopped = Exit {
            stop_requested: true,
            ..crash(None, 1)
        };
        assert_eq!(policy.after_exit(stopped, now), AfterExit::Stopped);
        let finished = Exit {
            success: true,
            ..crash(None, 1)
        };
        assert_eq!(policy.after_exit(finished, now), AfterExit::Finished);
        let candidate = Exit {
            serving: false,
            ..crash(None, 1)
        };
        assert_eq!(policy.after_exit(candidate, now), AfterExit::LeaveCrashed);
        let stopping = Exit {
            pipeline_stopping: true,
            ..crash(None, 1)
        };
        assert_eq!(policy.after_exit(stopping, now), AfterExit::LeaveCrashed);
    }
}
