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

    /// Records a batch's outcomes (`true` for a success) in the order its records were
    /// consumed; returns the failure share if, at any record, more than `max_ratio` of the
    /// last `window` records had failed.
    ///
    /// Record order matters when a batch is larger than the window: the window must hold the
    /// batch's last records as they came, not its successes followed by all its failures,
    /// which would make a few bad records spread through a large batch look like a burst.
    pub fn record(&mut self, outcomes: impl IntoIterator<Item = bool>) -> Option<f64> {
        let mut tripped = None;
        for outcome in outcomes {
            if self.outcomes.len() == self.window && !self.outcomes.pop_front().unwrap_or(true) {
                self.failures -= 1;
            }
            self.outcomes.push_back(outcome);
            if !outcome {
                self.failures += 1;
            }
            let ratio = self.failures as f64 / self.window as f64;
            if tripped.is_none() && self.outcomes.len() == self.window && ratio > self.max_ratio {
                tripped = Some(ratio);
            }
        }
        tripped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of `ok` successes then `failed` failures, in that record order.
    fn block(ok: usize, failed: usize) -> impl Iterator<Item = bool> {
        std::iter::repeat_n(true, ok).chain(std::iter::repeat_n(false, failed))
    }

    /// `len` outcomes with failures spread evenly at `ratio` (Bresenham-style), starting at
    /// record `from` of the stream.
    fn spread(ratio: f64, from: usize, len: usize) -> Vec<bool> {
        (from..from + len)
            .map(|i| ((i + 1) as f64 * ratio).floor() == (i as f64 * ratio).floor())
            .collect()
    }

    #[test]
    fn trips_only_on_a_full_window_over_the_ratio() {
        let mut breaker = CircuitBreaker::new(10, 0.5);
        assert_eq!(breaker.record(block(0, 9)), None, "window not full yet");
        let mut breaker = CircuitBreaker::new(10, 0.5);
        assert_eq!(
            breaker.record(block(5, 5)),
            None,
            "5 of 10 is not more than half"
        );
        assert_eq!(
            breaker.record(block(0, 1)),
            Some(0.6),
            "a success slid out, a failure came in"
        );
        let mut breaker = CircuitBreaker::new(10, 0.5);
        assert_eq!(
            breaker.record(block(1000, 3)),
            None,
            "a few bad records among many"
        );
        assert_eq!(breaker.record(block(0, 2)), None, "5 of the last 10");
    }

    #[test]
    fn failures_spread_evenly_trip_only_above_the_limit_at_any_batch_size() {
        // The default window (200) and limit (50%), 20,000 records in batches of 1, 200 and
        // 1,000 (the default batch, larger than the window).
        for batch in [1, 200, 1000] {
            for (ratio, trips) in [(0.10, false), (0.125, false), (0.40, false), (0.60, true)] {
                let mut breaker = CircuitBreaker::new(200, 0.5);
                let tripped = (0..20_000)
                    .step_by(batch)
                    .find_map(|from| breaker.record(spread(ratio, from, batch)));
                assert_eq!(
                    tripped.is_some(),
                    trips,
                    "{:.1}% failures in batches of {batch}: tripped at {tripped:?}",
                    ratio * 100.0
                );
            }
        }
    }

    #[test]
    fn a_burst_inside_a_batch_larger_than_the_window_trips() {
        // 150 failures in a row in a batch of 1,000 that is mostly good: at the burst's end
        // 150 of the last 200 records had failed.
        let mut breaker = CircuitBreaker::new(200, 0.5);
        let batch = block(400, 150).chain(std::iter::repeat_n(true, 450));
        assert_eq!(breaker.record(batch), Some(101.0 / 200.0));
    }
}
