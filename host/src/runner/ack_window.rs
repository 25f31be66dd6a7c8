//! The acknowledgement window: batches whose outputs are in flight, oldest first, each with
//! what becomes true once the broker has acknowledged every one of its outputs (the input
//! offsets a stage may then commit, the checkpoint a source may then store).
//!
//! Only the acknowledged *prefix* is released: a later batch acknowledged before an earlier
//! one waits for it, so nothing is committed past an output that may still fail. That is the
//! at-least-once promise, kept in one place for stages, sources and the benchmark's
//! passthrough.

use super::delivery::{Ack, DeliveryError};
use std::collections::VecDeque;
use std::sync::Arc;

/// Batches in flight, oldest first, each with its acknowledgement and what it completes.
#[derive(Debug)]
pub struct AckWindow<T> {
    entries: VecDeque<(Arc<Ack>, T)>,
}

impl<T> Default for AckWindow<T> {
    fn default() -> Self {
        AckWindow {
            entries: VecDeque::new(),
        }
    }
}

impl<T> AckWindow<T> {
    /// Adds a batch: `completes` is released once `ack` is done without error.
    pub fn push(&mut self, ack: Arc<Ack>, completes: T) {
        self.entries.push_back((ack, completes));
    }

    /// Batches in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The batches in flight, oldest first, with what each completes.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<Ack>, &T)> {
        self.entries.iter().map(|(ack, completes)| (ack, completes))
    }

    /// Releases the acknowledged prefix, oldest first, handing each batch's `completes` to
    /// `release`. Stops at the first batch still pending, or at the first that failed: its
    /// error is returned, and it and everything after it stay unreleased.
    pub fn release_acknowledged(
        &mut self,
        mut release: impl FnMut(T),
    ) -> Result<(), Box<DeliveryError>> {
        while let Some((ack, _)) = self.entries.front() {
            if !ack.done() {
                break;
            }
            if let Some(error) = ack.error() {
                return Err(Box::new(error));
            }
            let (_, completes) = self.entries.pop_front().expect("front exists");
            release(completes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_only_the_acknowledged_prefix_in_order() {
        let mut window = AckWindow::default();
        let (first, second, third) = (Ack::pending(1), Ack::pending(1), Ack::pending(1));
        window.push(Arc::clone(&first), "first");
        window.push(Arc::clone(&second), "second");
        window.push(Arc::clone(&third), "third");
        let mut released = Vec::new();

        // The second is acknowledged before the first: nothing may be released yet.
        second.acknowledge(None);
        window.release_acknowledged(|c| released.push(c)).unwrap();
        assert!(released.is_empty());

        first.acknowledge(None);
        window.release_acknowledged(|c| released.push(c)).unwrap();
        assert_eq!(released, ["first", "second"]);
        assert_eq!(window.len(), 1);

        third.acknowledge(None);
        window.release_acknowledged(|c| released.push(c)).unwrap();
        assert_eq!(released, ["first", "second", "third"]);
        assert!(window.is_empty());
    }

    #[test]
    fn a_failed_batch_stops_the_release_and_reports_its_error() {
        let mut window = AckWindow::default();
        let (ok, failed, later) = (Ack::pending(1), Ack::pending(2), Ack::pending(0));
        window.push(Arc::clone(&ok), 1);
        window.push(Arc::clone(&failed), 2);
        window.push(Arc::clone(&later), 3);
        ok.acknowledge(None);
        failed.acknowledge(Some(DeliveryError::for_test("out")));
        failed.acknowledge(None);
        let mut released = Vec::new();
        let error = window
            .release_acknowledged(|c| released.push(c))
            .unwrap_err();
        assert_eq!(released, [1]);
        assert_eq!(error.topic, "out");
        assert_eq!(
            window.len(),
            2,
            "the failed batch and the one after it stay"
        );
    }
}
