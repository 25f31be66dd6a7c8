//! What an at-least-once stage may commit, kept by input partition *and* assignment epoch.
//!
//! Kafka's classic group protocol checks a commit's member and generation, not who owns the
//! partition: a process that commits a partition after losing it moves the group's offset
//! back under the new owner's progress, where it stays (the new owner's later commits are
//! interleaved with the stale ones). So every piece of commit state here is tied to the
//! epoch of the partition's assignment. An epoch begins when the partition is assigned and
//! ends when it is revoked; whatever belongs to an ended epoch is dropped and never
//! committed: acknowledgements that arrive afterwards for its batches, its acknowledged
//! position, the commits to send again. Its records are not lost: the new owner reads them
//! from the last commit, which the revocation made as late as it could ([`CommitLedger::revoke`]).
//!
//! Pure bookkeeping, no Kafka: the consumer's rebalance callbacks and the loop drive it, and
//! its rules are tested here.

use super::ack_window::AckWindow;
use super::delivery::{Ack, DeliveryError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One partition's part of a batch: the next offset to commit once the batch is acknowledged,
/// for the epoch it was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Completes {
    partition: i32,
    epoch: u64,
    next_offset: i64,
}

/// The commit state of the partitions a process holds.
#[derive(Debug, Default)]
pub struct CommitLedger {
    /// Partitions held now, each with the epoch of its assignment.
    held: BTreeMap<i32, u64>,
    next_epoch: u64,
    /// Batches whose outputs are in flight, oldest first.
    window: AckWindow<Vec<Completes>>,
    /// Held partitions: the next offset after the acknowledged prefix of batches.
    acknowledged: BTreeMap<i32, i64>,
    /// Held partitions: the highest next offset handed to the window (acknowledged or not).
    queued: BTreeMap<i32, i64>,
    /// Held partitions: the offset a synchronous commit last confirmed.
    confirmed: BTreeMap<i32, i64>,
}

impl CommitLedger {
    /// Partitions were assigned: each one not held already begins a new epoch.
    pub fn assign(&mut self, partitions: &[i32]) {
        for &partition in partitions {
            if let std::collections::btree_map::Entry::Vacant(entry) = self.held.entry(partition) {
                entry.insert(self.next_epoch);
                self.next_epoch += 1;
            }
        }
    }

    /// The partitions held now, with their epochs.
    pub fn held(&self) -> &BTreeMap<i32, u64> {
        &self.held
    }

    /// A batch's outputs went to the producer, counted by `ack`: once it is acknowledged (and
    /// every batch before it), `next_offsets` may be committed. Partitions not held are left
    /// out: their records belong to an epoch that is over.
    pub fn push(&mut self, ack: Arc<Ack>, next_offsets: &BTreeMap<i32, i64>) {
        let completes: Vec<Completes> = next_offsets
            .iter()
            .filter_map(|(&partition, &next_offset)| {
                let epoch = *self.held.get(&partition)?;
                Some(Completes {
                    partition,
                    epoch,
                    next_offset,
                })
            })
            .collect();
        for c in &completes {
            raise(&mut self.queued, c.partition, c.next_offset);
        }
        self.window.push(ack, completes);
    }

    /// Moves the acknowledged prefix of batches into the acknowledged positions, dropping
    /// what belongs to an ended epoch, and adds the positions it advanced to `advanced`. A
    /// delivery error stops the release at its batch and is returned (it and everything after
    /// it stay in the window).
    pub fn release(&mut self, advanced: &mut BTreeMap<i32, i64>) -> Result<(), Box<DeliveryError>> {
        let Self {
            window,
            held,
            acknowledged,
            ..
        } = self;
        window.release_acknowledged(|completes| {
            for c in completes {
                if held.get(&c.partition) == Some(&c.epoch) {
                    raise(acknowledged, c.partition, c.next_offset);
                    raise(advanced, c.partition, c.next_offset);
                }
            }
        })
    }

    /// The acknowledgements a revocation of `partitions` waits for: every batch in flight up
    /// to the last one holding any of them (the window releases in order).
    pub fn in_flight_for(&self, partitions: &[i32]) -> Vec<Arc<Ack>> {
        let entries: Vec<(&Arc<Ack>, &Vec<Completes>)> = self.window.iter().collect();
        let last = entries.iter().rposition(|(_, completes)| {
            completes.iter().any(|c| partitions.contains(&c.partition))
        });
        match last {
            Some(last) => entries[..=last]
                .iter()
                .map(|(ack, _)| Arc::clone(ack))
                .collect(),
            None => Vec::new(),
        }
    }

    /// `partitions` are revoked: releases what is acknowledged, ends their epochs, and
    /// returns the offsets to commit for them before they go (acknowledged past the last
    /// confirmed commit). Nothing of theirs is committed from here again.
    pub fn revoke(&mut self, partitions: &[i32]) -> BTreeMap<i32, i64> {
        // A delivery error stays in the window for the loop to report; what was acknowledged
        // before it is still committed.
        let _ = self.release(&mut BTreeMap::new());
        let to_commit = self.unconfirmed_of(partitions);
        self.forget(partitions);
        to_commit
    }

    /// `partitions` were lost (the session ended, another member may own them already):
    /// their epochs end with nothing committed.
    pub fn forget(&mut self, partitions: &[i32]) {
        for partition in partitions {
            self.held.remove(partition);
            self.acknowledged.remove(partition);
            self.queued.remove(partition);
            self.confirmed.remove(partition);
        }
    }

    /// Every acknowledged position of the partitions held (what a full commit sends).
    pub fn acknowledged(&self) -> BTreeMap<i32, i64> {
        self.acknowledged.clone()
    }

    /// Acknowledged positions of held partitions that no synchronous commit has confirmed.
    pub fn unconfirmed(&self) -> BTreeMap<i32, i64> {
        let held: Vec<i32> = self.held.keys().copied().collect();
        self.unconfirmed_of(&held)
    }

    fn unconfirmed_of(&self, partitions: &[i32]) -> BTreeMap<i32, i64> {
        partitions
            .iter()
            .filter_map(|p| {
                let acknowledged = *self.acknowledged.get(p)?;
                let confirmed = self.confirmed.get(p).copied();
                (confirmed < Some(acknowledged)).then_some((*p, acknowledged))
            })
            .collect()
    }

    /// A synchronous commit of `offsets` succeeded (partitions not held are ignored).
    pub fn confirm(&mut self, offsets: &BTreeMap<i32, i64>) {
        for (&partition, &offset) in offsets {
            if self.held.contains_key(&partition) {
                raise(&mut self.confirmed, partition, offset);
            }
        }
    }

    /// The highest next offset of `partition` handed to the window, if it is held.
    pub fn queued(&self, partition: i32) -> Option<i64> {
        self.queued.get(&partition).copied()
    }

    /// Batches in flight.
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }
}

/// Sets `map[partition]` to `offset` unless it is already further.
fn raise(map: &mut BTreeMap<i32, i64>, partition: i32, offset: i64) {
    let entry = map.entry(partition).or_insert(offset);
    *entry = (*entry).max(offset);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(pairs: &[(i32, i64)]) -> BTreeMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    fn acked() -> Arc<Ack> {
        Ack::pending(0)
    }

    #[test]
    fn commits_only_the_acknowledged_prefix_of_held_partitions() {
        let mut ledger = CommitLedger::default();
        ledger.assign(&[0, 1]);
        let first = Ack::pending(1);
        ledger.push(Arc::clone(&first), &offsets(&[(0, 10), (1, 5)]));
        ledger.push(acked(), &offsets(&[(0, 20)]));
        ledger.release(&mut BTreeMap::new()).unwrap();
        assert_eq!(
            ledger.acknowledged(),
            offsets(&[]),
            "the first batch is pending"
        );
        first.acknowledge(None);
        let mut advanced = BTreeMap::new();
        ledger.release(&mut advanced).unwrap();
        assert_eq!(ledger.acknowledged(), offsets(&[(0, 20), (1, 5)]));
        assert_eq!(
            advanced,
            offsets(&[(0, 20), (1, 5)]),
            "what this release advanced"
        );
        assert_eq!(ledger.in_flight(), 0);
        ledger.push(acked(), &offsets(&[(1, 9)]));
        let mut advanced = BTreeMap::new();
        ledger.release(&mut advanced).unwrap();
        assert_eq!(advanced, offsets(&[(1, 9)]));
    }

    #[test]
    fn an_acknowledgement_after_the_revocation_is_dropped() {
        // The defect this ledger exists for: partition 1's in-flight batch was acknowledged
        // after the partition was revoked, was added back, and was then committed every few
        // seconds over the new owner's progress.
        let mut ledger = CommitLedger::default();
        ledger.assign(&[0, 1]);
        let late = Ack::pending(1);
        ledger.push(Arc::clone(&late), &offsets(&[(0, 100), (1, 3_710)]));
        assert_eq!(
            ledger.revoke(&[1]),
            offsets(&[]),
            "nothing acknowledged yet"
        );
        late.acknowledge(None);
        ledger.release(&mut BTreeMap::new()).unwrap();
        assert_eq!(ledger.acknowledged(), offsets(&[(0, 100)]));
        assert_eq!(ledger.unconfirmed(), offsets(&[(0, 100)]));
    }

    #[test]
    fn a_partition_assigned_again_starts_a_new_epoch() {
        let mut ledger = CommitLedger::default();
        ledger.assign(&[1]);
        let old = Ack::pending(1);
        ledger.push(Arc::clone(&old), &offsets(&[(1, 50)]));
        ledger.revoke(&[1]);
        ledger.assign(&[1]);
        ledger.push(acked(), &offsets(&[(1, 40)]));
        old.acknowledge(None);
        ledger.release(&mut BTreeMap::new()).unwrap();
        // 50 belongs to the ended epoch: the group moved on from 40 under another owner.
        assert_eq!(ledger.acknowledged(), offsets(&[(1, 40)]));
    }

    #[test]
    fn a_revocation_returns_what_it_must_commit_and_forgets_it() {
        let mut ledger = CommitLedger::default();
        ledger.assign(&[0, 1, 2]);
        ledger.push(acked(), &offsets(&[(0, 7), (1, 8), (2, 9)]));
        ledger.release(&mut BTreeMap::new()).unwrap();
        ledger.confirm(&offsets(&[(2, 9)]));
        assert_eq!(
            ledger.revoke(&[1, 2]),
            offsets(&[(1, 8)]),
            "2 is confirmed already"
        );
        assert_eq!(ledger.held().keys().copied().collect::<Vec<_>>(), vec![0]);
        assert_eq!(ledger.acknowledged(), offsets(&[(0, 7)]));
        assert_eq!(ledger.queued(1), None);
    }

    #[test]
    fn a_revocation_waits_for_every_batch_up_to_the_last_holding_its_partitions() {
        let mut ledger = CommitLedger::default();
        ledger.assign(&[0, 1]);
        let (a, b, c) = (Ack::pending(1), Ack::pending(1), Ack::pending(1));
        ledger.push(Arc::clone(&a), &offsets(&[(0, 1)]));
        ledger.push(Arc::clone(&b), &offsets(&[(1, 1)]));
        ledger.push(Arc::clone(&c), &offsets(&[(0, 2)]));
        let waits = ledger.in_flight_for(&[1]);
        assert_eq!(waits.len(), 2);
        assert!(Arc::ptr_eq(&waits[0], &a) && Arc::ptr_eq(&waits[1], &b));
        assert!(ledger.in_flight_for(&[5]).is_empty());
    }

    #[test]
    fn lost_partitions_commit_nothing() {
        let mut ledger = CommitLedger::default();
        ledger.assign(&[0]);
        ledger.push(acked(), &offsets(&[(0, 9)]));
        ledger.release(&mut BTreeMap::new()).unwrap();
        ledger.forget(&[0]);
        assert_eq!(ledger.unconfirmed(), offsets(&[]));
        assert_eq!(ledger.acknowledged(), offsets(&[]));
    }

    #[test]
    fn a_delivery_error_stops_the_release_at_its_batch() {
        let mut ledger = CommitLedger::default();
        ledger.assign(&[0]);
        ledger.push(acked(), &offsets(&[(0, 5)]));
        let failed = Ack::pending(1);
        failed.acknowledge(Some(DeliveryError::for_test("out")));
        ledger.push(failed, &offsets(&[(0, 10)]));
        assert!(ledger.release(&mut BTreeMap::new()).is_err());
        assert_eq!(ledger.acknowledged(), offsets(&[(0, 5)]));
        assert_eq!(ledger.revoke(&[0]), offsets(&[(0, 5)]));
    }

    #[test]
    fn offsets_only_move_forward() {
        let mut ledger = CommitLedger::default();
        ledger.assign(&[0]);
        ledger.push(acked(), &offsets(&[(0, 9)]));
        ledger.push(acked(), &offsets(&[(0, 4)]));
        ledger.release(&mut BTreeMap::new()).unwrap();
        assert_eq!(ledger.acknowledged(), offsets(&[(0, 9)]));
        ledger.confirm(&offsets(&[(0, 9)]));
        ledger.confirm(&offsets(&[(0, 3)]));
        assert_eq!(ledger.unconfirmed(), offsets(&[]));
    }
}
