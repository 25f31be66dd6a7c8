//! Handing partitions over: before a revoked partition goes to its next owner, and before a
//! stopping process leaves its group, an at-least-once stage commits what it finished.
//!
//! A revocation (the rebalance callback, on the loop's thread, inside `poll`) waits, bounded,
//! for the acknowledgements of the batches in flight that hold the revoked partitions, then
//! commits their acknowledged offsets synchronously, and only then lets the partitions go.
//! Records the stage had consumed but not processed are dropped from the batch in hand
//! (`Batch::retain_current`) and left, uncommitted, to the new owner. So a planned hand-over
//! (a swap, a scale-up or -down, a replica stopping) re-processes nothing, where before the
//! new owner produced again the outputs of every batch not yet committed.
//!
//! A commit the group refuses while it rebalances, or while its coordinator moves, is sent
//! again until the deadline; one that still fails is logged once at WARN with the partitions
//! and offsets it leaves uncommitted, and counted (`stage_host_uncommitted_partitions_total`):
//! their records are read again by whoever reads the partition next, nothing is lost.

use super::commit_ledger::CommitLedger;
use super::delivery::Ack;
use crate::observe::Observer;
use crate::watchdog::Watchdog;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the rebalance callbacks need to hand partitions over.
pub struct HandOver {
    /// The commit state the loop and the callbacks share (both on the loop's thread).
    pub ledger: Arc<Mutex<CommitLedger>>,
    /// Whether this process commits the group's offsets itself (at-least-once). Under
    /// exactly-once the offsets travel in transactions, and a revocation aborts the open one.
    pub commits: bool,
    /// How long a revocation may wait for acknowledgements and commits.
    pub timeout: Duration,
    /// The input topic.
    pub topic: String,
    /// Where the uncommitted partitions are counted.
    pub observer: Arc<Observer>,
    /// Bounds the commits: a commit is a Kafka client call like any other.
    pub watchdog: Watchdog,
    /// Set once the stopping loop's drain has waited and committed: the revocations of the
    /// group leave that follows wait no more.
    pub drained: AtomicBool,
}

impl HandOver {
    /// Locks the ledger (a panic elsewhere does not make the bookkeeping unusable).
    pub fn ledger(&self) -> std::sync::MutexGuard<'_, CommitLedger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The revoke callback: commits what is finished of `partitions`, then forgets them. When
    /// the assignment was lost (the session ended), another member may own them already, so
    /// nothing is committed.
    pub fn revoke<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, partitions: &[i32]) {
        if consumer.assignment_lost() {
            self.ledger().forget(partitions);
            tracing::info!(
                partitions = ?partitions,
                "partitions lost with the group session: nothing committed for them; their next owner reads them from the last commit"
            );
            return;
        }
        if !self.commits {
            self.ledger().forget(partitions);
            return;
        }
        let timeout = if self.drained.load(Ordering::Acquire) {
            Duration::ZERO
        } else {
            self.timeout
        };
        let deadline = Instant::now() + timeout;
        let waits = self.ledger().in_flight_for(partitions);
        if !wait_for_acks(&waits, deadline) {
            tracing::warn!(
                partitions = ?partitions,
                "outputs of the revoked partitions were not all acknowledged within {} ms; only the acknowledged part is committed",
                self.timeout.as_millis()
            );
        }
        let offsets = self.ledger().revoke(partitions);
        if offsets.is_empty() {
            tracing::info!(
                partitions = ?partitions,
                "nothing of the revoked partitions was finished since their last commit; handing them over as committed"
            );
            return;
        }
        // Within a rebalance callback the consumer cannot be polled: a refusal is retried
        // after a short wait.
        loop {
            let committed = {
                let left = deadline.saturating_duration_since(Instant::now());
                let _call = self
                    .watchdog
                    .client_call("committing the revoked partitions", left);
                commit_verified(consumer, &self.topic, &offsets, deadline)
            };
            match committed {
                Ok(()) => {
                    tracing::info!(
                        offsets = %describe(&self.topic, &offsets),
                        "committed the revoked partitions before handing them over"
                    );
                    return;
                }
                Err(e) if retriable(&e) && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "commit refused; sending it again");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    self.uncommitted(&offsets, &e, "handing the revoked partitions over");
                    return;
                }
            }
        }
    }

    /// Logs and counts `offsets` that could not be committed.
    pub fn uncommitted(&self, offsets: &BTreeMap<i32, i64>, error: &KafkaError, when: &str) {
        self.observer
            .metrics
            .uncommitted_partitions(offsets.len() as u64);
        tracing::warn!(
            uncommitted = %describe(&self.topic, offsets),
            error = %error,
            "{when}: the commit failed; these offsets are not committed, and their records will be read again by the partitions' next reader"
        );
    }
}

/// Waits until every acknowledgement in `acks` is done, or `deadline`. Whether all were.
fn wait_for_acks(acks: &[Arc<Ack>], deadline: Instant) -> bool {
    loop {
        if acks.iter().all(|a| a.done()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Commits `offsets` of `topic` synchronously, and reads them back: a commit counts only when
/// the group's offsets are at least these (librdkafka reports a commit that failed for some of
/// its partitions as a success). The read waits at most until `deadline` (and half a second).
pub fn commit_verified<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    deadline: Instant,
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (&partition, &offset) in offsets {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    consumer.commit(&tpl, CommitMode::Sync)?;
    verify(consumer, &tpl, deadline)
}

/// Reads the group's offsets for `tpl`'s partitions back: each must be at least `tpl`'s.
fn verify<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
    deadline: Instant,
) -> Result<(), KafkaError> {
    let timeout = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500));
    let committed = consumer.committed_offsets(tpl.clone(), timeout)?;
    for wanted in tpl.elements() {
        let got = committed
            .find_partition(wanted.topic(), wanted.partition())
            .map(|e| e.offset());
        match (wanted.offset(), got) {
            (Offset::Offset(w), Some(Offset::Offset(g))) if g >= w => {}
            _ => {
                // Not there yet (the commit raced a rebalance): the same as a refusal.
                return Err(KafkaError::ConsumerCommit(
                    RDKafkaErrorCode::RebalanceInProgress,
                ));
            }
        }
    }
    Ok(())
}

/// Whether a refused commit may succeed when sent again: the group is rebalancing, the member
/// is rejoining, or the coordinator is moving or loading.
pub fn retriable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::RebalanceInProgress
                | C::IllegalGeneration
                | C::UnknownMemberId
                | C::NotCoordinator
                | C::CoordinatorNotAvailable
                | C::CoordinatorLoadInProgress
                | C::RequestTimedOut
                | C::OperationTimedOut
                | C::NetworkException
                | C::WaitingForCoordinator
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::Retry
                | C::TimedOutQueue
        )
    )
}

/// `topic[p]@offset, ...`
pub fn describe(topic: &str, offsets: &BTreeMap<i32, i64>) -> String {
    offsets
        .iter()
        .map(|(p, o)| format!("{topic}[{p}]@{o}"))
        .collect::<Vec<_>>()
        .join(", ")
}
