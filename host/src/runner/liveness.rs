//! Two guards against a stage that sits still in silence while it looks healthy:
//!
//! - **No assignment.** A stage subscribed for a while without being given any partition does
//!   nothing, and nothing says why (more replicas than partitions, a group the broker keeps
//!   stable with no members, another application in the same group). After
//!   `--no-assignment-warn-secs` it logs a warning naming the group, its state and members,
//!   and repeats it at the same interval while it lasts.
//! - **Stalled consumer.** A stage holding partitions whose broker has records beyond the
//!   fetch position, yet consuming nothing for `--stall-timeout-secs`, is stuck (a fetcher
//!   that stopped, a group that lost the member without telling it, access revoked). It
//!   rejoins its group once, with one warning; if it stalls again without consuming a record
//!   in between, it stops with an error and a non-zero exit, so a supervisor restarts it.
//!   Whether records wait is asked of the broker (high watermarks against the consumer's
//!   position) only once nothing was consumed for the timeout: librdkafka's own statistics
//!   know the high watermark only from fetches that succeeded, which a stalled fetcher lacks.
//!
//! The decisions are pure functions of what the loop reports and the time, so they are
//! tested without a broker; the loop carries out the actions.

use std::time::{Duration, Instant};

/// `--no-assignment-warn-secs` unless given.
pub const DEFAULT_NO_ASSIGNMENT_WARN_SECS: u64 = 30;
/// `--stall-timeout-secs` unless given: well above a rebalance or a broker restart.
pub const DEFAULT_STALL_TIMEOUT_SECS: u64 = 120;

/// When the guards act. A zero duration turns a guard off.
#[derive(Debug, Clone, Copy)]
pub struct LivenessLimits {
    /// Warn after this long subscribed without an assignment (and again at this interval).
    pub no_assignment_warn: Duration,
    /// A consumer with records waiting that consumes nothing this long is stalled.
    pub stall_timeout: Duration,
}

impl Default for LivenessLimits {
    fn default() -> Self {
        LivenessLimits {
            no_assignment_warn: Duration::from_secs(DEFAULT_NO_ASSIGNMENT_WARN_SECS),
            stall_timeout: Duration::from_secs(DEFAULT_STALL_TIMEOUT_SECS),
        }
    }
}

/// What the loop should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LivenessAction {
    /// Nothing.
    Continue,
    /// Log the no-assignment warning (with the group's state), `waited` since subscribing.
    WarnNoAssignment {
        /// How long the stage has had no partition.
        waited: Duration,
    },
    /// Nothing consumed for the stall timeout: ask the broker whether records wait beyond the
    /// consumer's position, then call [`Liveness::stalled`] or [`Liveness::not_stalled`].
    ProbeStall,
    /// Leave and rejoin the group: stalled for `stalled` with `waiting` records.
    Rejoin {
        /// How long nothing was consumed.
        stalled: Duration,
        /// Records beyond the consumer's position.
        waiting: u64,
    },
    /// Stalled again after rejoining: stop the stage.
    Fail {
        /// How long nothing was consumed since the rejoin.
        stalled: Duration,
        /// Records beyond the consumer's position.
        waiting: u64,
    },
}

/// The guards' state.
#[derive(Debug)]
pub struct Liveness {
    limits: LivenessLimits,
    /// Since when the stage has had no partition (`None`: it has some).
    unassigned_since: Option<Instant>,
    last_warning: Option<Instant>,
    /// When a record was last consumed, or the clock (re)started.
    last_progress: Instant,
    /// Whether the stage rejoined and has not consumed since.
    rejoined: bool,
}

impl Liveness {
    /// Starts watching at `now`, just subscribed and without an assignment.
    pub fn new(limits: LivenessLimits, now: Instant) -> Liveness {
        Liveness {
            limits,
            unassigned_since: Some(now),
            last_warning: None,
            last_progress: now,
            rejoined: false,
        }
    }

    /// The assignment changed to `partitions` partitions at `now`.
    pub fn assigned(&mut self, partitions: usize, now: Instant) {
        if partitions == 0 {
            self.unassigned_since.get_or_insert(now);
        } else {
            self.unassigned_since = None;
            self.last_warning = None;
        }
        // A new assignment starts fetching afresh: give it the full timeout.
        self.last_progress = now;
    }

    /// `records` were consumed at `now`.
    pub fn consumed(&mut self, records: usize, now: Instant) {
        if records > 0 {
            self.last_progress = now;
            self.rejoined = false;
        }
    }

    /// Decides at `now`.
    pub fn check(&mut self, now: Instant) -> LivenessAction {
        if let Some(since) = self.unassigned_since {
            let every = self.limits.no_assignment_warn;
            let due = match self.last_warning {
                None => now.duration_since(since) >= every,
                Some(last) => now.duration_since(last) >= every,
            };
            if !every.is_zero() && due {
                self.last_warning = Some(now);
                return LivenessAction::WarnNoAssignment {
                    waited: now.duration_since(since),
                };
            }
            return LivenessAction::Continue;
        }
        let timeout = self.limits.stall_timeout;
        if !timeout.is_zero() && now.duration_since(self.last_progress) >= timeout {
            LivenessAction::ProbeStall
        } else {
            LivenessAction::Continue
        }
    }

    /// The probe found `waiting` records beyond the position after [`LivenessAction::ProbeStall`]:
    /// rejoin the first time, fail if it stalls again before consuming anything.
    pub fn stalled(&mut self, waiting: u64, now: Instant) -> LivenessAction {
        let stalled = now.duration_since(self.last_progress);
        self.last_progress = now;
        if self.rejoined {
            LivenessAction::Fail { stalled, waiting }
        } else {
            self.rejoined = true;
            LivenessAction::Rejoin { stalled, waiting }
        }
    }

    /// The probe found nothing waiting (or no answer): idle, not stalled; look again after
    /// another timeout.
    pub fn not_stalled(&mut self, now: Instant) -> LivenessAction {
        self.last_progress = now;
        LivenessAction::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: LivenessLimits = LivenessLimits {
        no_assignment_warn: Duration::from_secs(30),
        stall_timeout: Duration::from_secs(60),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn warns_after_the_limit_without_an_assignment_and_repeats() {
        let t0 = Instant::now();
        let mut watch = Liveness::new(LIMITS, t0);
        assert_eq!(watch.check(t0 + secs(29)), LivenessAction::Continue);
        assert_eq!(
            watch.check(t0 + secs(30)),
            LivenessAction::WarnNoAssignment { waited: secs(30) }
        );
        assert_eq!(watch.check(t0 + secs(45)), LivenessAction::Continue);
        assert_eq!(
            watch.check(t0 + secs(60)),
            LivenessAction::WarnNoAssignment { waited: secs(60) }
        );
        watch.assigned(2, t0 + secs(61));
        watch.consumed(1, t0 + secs(62));
        assert_eq!(watch.check(t0 + secs(100)), LivenessAction::Continue);
    }

    #[test]
    fn losing_every_partition_starts_the_no_assignment_clock_again() {
        let t0 = Instant::now();
        let mut watch = Liveness::new(LIMITS, t0);
        watch.assigned(1, t0 + secs(1));
        watch.assigned(0, t0 + secs(10));
        assert_eq!(watch.check(t0 + secs(39)), LivenessAction::Continue);
        assert!(matches!(
            watch.check(t0 + secs(40)),
            LivenessAction::WarnNoAssignment { .. }
        ));
    }

    #[test]
    fn an_idle_stage_is_probed_once_per_timeout_and_is_not_stalled_with_nothing_waiting() {
        let t0 = Instant::now();
        let mut watch = Liveness::new(LIMITS, t0);
        watch.assigned(4, t0);
        assert_eq!(watch.check(t0 + secs(59)), LivenessAction::Continue);
        assert_eq!(watch.check(t0 + secs(60)), LivenessAction::ProbeStall);
        assert_eq!(watch.not_stalled(t0 + secs(60)), LivenessAction::Continue);
        assert_eq!(watch.check(t0 + secs(119)), LivenessAction::Continue);
        assert_eq!(watch.check(t0 + secs(120)), LivenessAction::ProbeStall);
    }

    #[test]
    fn a_stall_rejoins_once_then_fails_if_nothing_is_consumed() {
        let t0 = Instant::now();
        let mut watch = Liveness::new(LIMITS, t0);
        watch.assigned(2, t0);
        watch.consumed(10, t0 + secs(5));
        assert_eq!(watch.check(t0 + secs(64)), LivenessAction::Continue);
        assert_eq!(watch.check(t0 + secs(65)), LivenessAction::ProbeStall);
        assert_eq!(
            watch.stalled(500, t0 + secs(65)),
            LivenessAction::Rejoin {
                stalled: secs(60),
                waiting: 500
            }
        );
        // The rejoin's assignment restarts the clock; still nothing consumed after it.
        watch.assigned(2, t0 + secs(70));
        assert_eq!(watch.check(t0 + secs(129)), LivenessAction::Continue);
        assert_eq!(watch.check(t0 + secs(130)), LivenessAction::ProbeStall);
        assert_eq!(
            watch.stalled(500, t0 + secs(130)),
            LivenessAction::Fail {
                stalled: secs(60),
                waiting: 500
            }
        );
    }

    #[test]
    fn consuming_after_a_rejoin_clears_it() {
        let t0 = Instant::now();
        let mut watch = Liveness::new(LIMITS, t0);
        watch.assigned(1, t0);
        assert_eq!(watch.check(t0 + secs(60)), LivenessAction::ProbeStall);
        assert!(matches!(
            watch.stalled(9, t0 + secs(60)),
            LivenessAction::Rejoin { .. }
        ));
        watch.consumed(1, t0 + secs(61));
        assert_eq!(watch.check(t0 + secs(121)), LivenessAction::ProbeStall);
        assert!(matches!(
            watch.stalled(9, t0 + secs(121)),
            LivenessAction::Rejoin { .. }
        ));
    }

    #[test]
    fn zero_limits_turn_the_guards_off() {
        let off = LivenessLimits {
            no_assignment_warn: Duration::ZERO,
            stall_timeout: Duration::ZERO,
        };
        let t0 = Instant::now();
        let mut watch = Liveness::new(off, t0);
        assert_eq!(watch.check(t0 + secs(999)), LivenessAction::Continue);
        watch.assigned(1, t0);
        assert_eq!(watch.check(t0 + secs(999)), LivenessAction::Continue);
    }
}
