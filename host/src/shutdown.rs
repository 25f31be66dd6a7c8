//! SIGINT/SIGTERM handling: a flag the run loops check between batches, so a stop always
//! finishes the batch in hand, flushes, commits and leaves the group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set once a stop signal arrived.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A flag set by SIGINT or SIGTERM. A second signal, while the first one's drain is
    /// still running (a flush waiting for a broker that is gone, say), ends the process at
    /// once with exit code 1: nothing past the last commit is committed, so nothing is lost.
    pub fn on_signals() -> std::io::Result<Self> {
        let flag = Shutdown::default();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered first, so it sees the flag as the earlier signals left it.
            signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&flag.0))?;
            signal_hook::flag::register(signal, Arc::clone(&flag.0))?;
        }
        Ok(flag)
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Requests a stop (used by tests and by fatal errors on other threads).
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Sleeps up to `duration`, waking early on a stop request.
    pub fn sleep(&self, duration: std::time::Duration) {
        let deadline = std::time::Instant::now() + duration;
        while !self.requested() {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(50)));
        }
    }
}
