//! A plugin call that never returns cannot be interrupted: its thread belongs to the plugin.
//! The watchdog notices it and ends the process; since offsets are committed only after a
//! batch is done, the batch is read again by the restarted (or another) process.

use crate::error::exit_code;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Watches plugin calls; [`Watchdog::guard`] marks one in progress.
#[derive(Clone)]
pub struct Watchdog {
    /// Milliseconds since `epoch` when the current call started; 0 when no call runs.
    started_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watchdog {
    /// Starts the watching thread: a call running longer than `timeout` ends the process with
    /// exit code 1 and one error line.
    pub fn start(timeout: Duration) -> Watchdog {
        let dog = Watchdog {
            started_ms: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        };
        let watched = dog.clone();
        std::thread::Builder::new()
            .name("plugin-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100).min(timeout));
                let started = watched.started_ms.load(Ordering::Acquire);
                if started == 0 {
                    continue;
                }
                let now = watched.epoch.elapsed().as_millis() as u64;
                if now.saturating_sub(started) > timeout.as_millis() as u64 {
                    tracing::error!(
                        "plugin call did not return within {} s (hung?); exiting without committing the batch, which will be read again",
                        timeout.as_secs_f64()
                    );
                    std::process::exit(exit_code::RUN_FAILED);
                }
            })
            .expect("the watchdog thread starts");
        dog
    }

    /// Marks a plugin call in progress until the guard drops.
    pub fn guard(&self) -> CallGuard<'_> {
        let now = (self.epoch.elapsed().as_millis() as u64).max(1);
        self.started_ms.store(now, Ordering::Release);
        CallGuard(self)
    }
}

/// A plugin call in progress.
pub struct CallGuard<'a>(&'a Watchdog);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.0.started_ms.store(0, Ordering::Release);
    }
}
