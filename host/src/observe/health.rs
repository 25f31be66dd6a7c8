//! The state behind `/health/live` and `/health/ready`.
//!
//! Readiness means "this process is doing its job": start-up finished and, for a stage, the
//! consumer group gave it an assignment (possibly empty: a spare replica is a member ready to
//! take partitions over); for a source, it is producing. It is withdrawn while draining and
//! after a fatal error, so a load balancer or orchestrator stops counting on the process
//! before it exits. Liveness only fails after a fatal error: a slow start or a drain is not a
//! reason to kill the process (a hung plugin call is handled by the watchdog).

use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering};

/// Where a stage process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Loading, checking, connecting, waiting for the input topic or a first assignment.
    Starting,
    /// Consuming (a stage with an assignment) or producing (a source).
    Ready,
    /// A stop was requested: finishing the batch, flushing, committing, leaving the group.
    Draining,
    /// A fatal error ended the loop; the process is about to exit.
    Failed,
}

impl HealthState {
    fn from_u8(value: u8) -> HealthState {
        match value {
            1 => HealthState::Ready,
            2 => HealthState::Draining,
            3 => HealthState::Failed,
            _ => HealthState::Starting,
        }
    }

    /// Whether `/health/ready` answers 200.
    pub fn is_ready(self) -> bool {
        self == HealthState::Ready
    }

    /// Whether `/health/live` answers 200.
    pub fn is_live(self) -> bool {
        self != HealthState::Failed
    }
}

/// The process's state, readable from any thread.
#[derive(Debug, Default)]
pub struct Health(AtomicU8);

impl Health {
    /// The current state.
    pub fn state(&self) -> HealthState {
        HealthState::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Start-up finished and the consumer holds an assignment, or the source produces.
    /// Ignored once draining or failed: a late assignment does not undo a stop.
    pub fn set_ready(&self) {
        let _ = self.0.compare_exchange(
            HealthState::Starting as u8,
            HealthState::Ready as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// A stop began. Ignored after a fatal error.
    pub fn set_draining(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                (s != HealthState::Failed as u8).then_some(HealthState::Draining as u8)
            });
    }

    /// A fatal error ended the run.
    pub fn set_failed(&self) {
        self.0.store(HealthState::Failed as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_only() {
        let health = Health::default();
        assert_eq!(health.state(), HealthState::Starting);
        assert!(!health.state().is_ready() && health.state().is_live());
        health.set_ready();
        assert!(health.state().is_ready());
        health.set_draining();
        health.set_ready();
        assert_eq!(health.state(), HealthState::Draining);
        health.set_failed();
        health.set_draining();
        assert_eq!(health.state(), HealthState::Failed);
        assert!(!health.state().is_live());
    }
}
