//! The circuit breaker: under `skip` or `dead-letter`, a stage whose records mostly fail is
//! probably broken (a bad deploy, a schema mix-up) rather than fed a few bad records. Rather
//! than dead-letter a whole topic, it stops.

use std::collections::VecDeque;

/// Outcomes of the most recent records.
pub struct CircuitBreaker {
    window: usize,
    max_ratio: f64,
    outcomes: VecDeque<bool>,
    failures: usize,
}

impl CircuitBreaker {
    /// Trips when more than `max_ratio` of the last `window` records failed.
    pub fn new(window: usize, max_ratio: f64) -> Self {
        CircuitBreaker {
            window: window.max(1),
            max_ratio,
            outcomes: VecDeque::with_capacity(window.max(1)),
            failures: 0,
        }
    }

    /// Records `ok` successes and `failed` failures; returns the failure share if the breaker
    /// trips.
    pub fn record(&mut self, ok: usize, failed: usize) -> Option<f64> {
        // Successes first, then failures: a batch's failures count against it in full.
        for outcome in std::iter::repeat_n(true, ok).chain(std::iter::repeat_n(false, failed)) {
            if self.outcomes.len() == self.window && !self.outcomes.pop_front().unwrap_or(true) {
                self.failures -= 1;
            }
            self.outcomes.push_back(outcome);
            if !outcome {
                self.failures += 1;
            }
        }
        let ratio = self.failures as f64 / self.window as f64;
        (self.outcomes.len() == self.window && ratio > self.max_ratio).then_some(ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_only_on_a_full_window_over_the_ratio() {
        let mut breaker = CircuitBreaker::new(10, 0.5);
        assert_eq!(breaker.record(0, 9), None, "window not full yet");
        let mut breaker = CircuitBreaker::new(10, 0.5);
        assert_eq!(breaker.record(5, 5), None, "5 of 10 is not more than half");
        assert_eq!(
            breaker.record(0, 1),
            Some(0.6),
            "a success slid out, a failure came in"
        );
        let mut breaker = CircuitBreaker::new(10, 0.5);
        assert_eq!(
            breaker.record(1000, 3),
            None,
            "a few bad records among many"
        );
        assert_eq!(breaker.record(0, 2), None, "5 of the last 10");
    }
}
