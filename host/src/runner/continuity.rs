//! The continuity audit: every offset of every assigned partition is either delivered to the
//! stage or accounted for.
//!
//! A consumer can be handed records with a jump in their offsets for good reasons, and for
//! one bad one:
//! - **transaction markers**: each committed or aborted transaction leaves one control record
//!   per partition, which no consumer delivers;
//! - **aborted transaction data**: a `read_committed` consumer skips it;
//! - **compaction**: a compacted topic no longer holds the older records of a key;
//! - **a seek or an offset reset**: the client moved its position (after `Offset out of range`,
//!   e.g. when retention deleted records the group had not read, `auto.offset.reset` applies);
//! - **unknown**: records the broker holds but never delivered, with no marker among them.
//!   That is a record lost in silence if the stage then commits past it.
//!
//! So the audit tracks, per assigned partition, the next offset it expects (from the group's
//! committed offset at assignment, then from each record), and reports every jump as a
//! [`Gap`]. Classifying a gap may need the broker: the stage reads the skipped range again
//! with a `read_uncommitted` probe ([`Probe`]) and hands what it found to [`ContinuityAudit::classify`].
//! Offsets the probe does not return are control records (or compacted away); records it does
//! return were skipped by the consumer, which is normal only for aborted data, i.e. when a
//! marker is among them. Once a partition showed a marker it is known to carry transactions,
//! and later one-record gaps there are markers without asking the broker again.
//!
//! Everything here is pure and unit-tested; the stage loop does the reading.

use std::collections::HashMap;

/// Why offsets were skipped, as far as can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapReason {
    /// Control records of transactions (commit or abort markers).
    TransactionMarker,
    /// Records of aborted transactions, skipped by a `read_committed` consumer.
    AbortedTransaction,
    /// The topic is compacted.
    Compaction,
    /// The client's position moved: an offset reset or a seek.
    Seek,
    /// The records exist but were not delivered, and no marker explains it.
    Unknown,
}

impl GapReason {
    /// The name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            GapReason::TransactionMarker => "transaction_marker",
            GapReason::AbortedTransaction => "aborted_transaction",
            GapReason::Compaction => "compaction",
            GapReason::Seek => "seek",
            GapReason::Unknown => "unknown",
        }
    }

    /// Whether a gap of this reason is a normal part of reading the topic: transaction
    /// markers are; everything else is worth a warning.
    pub fn is_routine(self) -> bool {
        self == GapReason::TransactionMarker
    }
}

/// A jump in the offsets delivered from one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The partition.
    pub partition: i32,
    /// The first offset not delivered.
    pub from: i64,
    /// The offset delivered after the gap (exclusive end).
    pub to: i64,
}

impl Gap {
    /// How many offsets were skipped.
    pub fn len(&self) -> i64 {
        self.to - self.from
    }
}

/// What a `read_uncommitted` read of a gap's range found: the offsets that hold records, and
/// whether the read reached the end of the range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// Offsets inside the gap that the probe received.
    pub records: Vec<i64>,
    /// Whether the probe read up to the gap's end (else it gave up early).
    pub complete: bool,
    /// The partition's log start offset when probed: offsets below it were deleted
    /// (retention, `DeleteRecords`), and a consumer that had them to read was reset past them.
    pub log_start: Option<i64>,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// The offset the next record should have (`None`: not known yet).
    expected: Option<i64>,
    /// Learned from a probe: this partition carries transactions.
    transactional: bool,
}

/// The audit's state for the partitions a consumer holds.
#[derive(Debug)]
pub struct ContinuityAudit {
    partitions: HashMap<i32, PartitionState>,
    /// The input topic is compacted (its `cleanup.policy` includes `compact`).
    compacted: bool,
    /// The client reported an offset reset since the last record (it names no partition).
    reset_seen: bool,
}

impl ContinuityAudit {
    /// An audit of a topic that is (or is not) compacted.
    pub fn new(compacted: bool) -> ContinuityAudit {
        ContinuityAudit {
            partitions: HashMap::new(),
            compacted,
            reset_seen: false,
        }
    }

    /// `partition` was assigned; its first record should be at `start` (the group's committed
    /// offset), if known.
    pub fn assigned(&mut self, partition: i32, start: Option<i64>) {
        let state = self.partitions.entry(partition).or_default();
        state.expected = start;
    }

    /// `partition` was revoked.
    pub fn revoked(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// The stage moved `partition` to `offset` itself (a rewind after an aborted
    /// transaction): the next record is expected there, or anywhere if `None`.
    pub fn seeked(&mut self, partition: i32, offset: Option<i64>) {
        self.partitions.entry(partition).or_default().expected = offset;
    }

    /// The client reported that it reset an offset (`auto.offset.reset` applied).
    pub fn offset_reset(&mut self) {
        self.reset_seen = true;
    }

    /// A record at `offset` of `partition` was delivered. Returns the gap before it, if any.
    /// An offset below the expected one is a re-delivery (after a rebalance or a rewind), not
    /// a gap.
    pub fn observe(&mut self, partition: i32, offset: i64) -> Option<Gap> {
        let state = self.partitions.entry(partition).or_default();
        let gap = match state.expected {
            Some(expected) if offset > expected => Some(Gap {
                partition,
                from: expected,
                to: offset,
            }),
            _ => None,
        };
        state.expected = Some(offset + 1);
        gap
    }

    /// Whether classifying `gap` needs a probe of the broker: not when the reason is known
    /// without one.
    pub fn needs_probe(&self, gap: &Gap) -> bool {
        if self.reset_seen || self.compacted {
            return false;
        }
        let transactional = self
            .partitions
            .get(&gap.partition)
            .is_some_and(|s| s.transactional);
        !(transactional && gap.len() == 1)
    }

    /// Names the likely reason for `gap`, given what a probe found (`None`: no probe was made,
    /// or it failed).
    pub fn classify(&mut self, gap: &Gap, probe: Option<&Probe>) -> GapReason {
        if std::mem::take(&mut self.reset_seen) {
            return GapReason::Seek;
        }
        if self.compacted {
            return GapReason::Compaction;
        }
        let state = self.partitions.entry(gap.partition).or_default();
        let Some(probe) = probe else {
            return if state.transactional && gap.len() == 1 {
                GapReason::TransactionMarker
            } else {
                GapReason::Unknown
            };
        };
        if probe.log_start.is_some_and(|start| gap.from < start) {
            return GapReason::Seek;
        }
        let present = probe
            .records
            .iter()
            .filter(|o| (gap.from..gap.to).contains(*o))
            .count() as i64;
        // Offsets the probe read past without a record are control records.
        let markers = probe.complete && present < gap.len();
        match (present, markers) {
            (0, true) => {
                state.transactional = true;
                GapReason::TransactionMarker
            }
            (_, true) => {
                state.transactional = true;
                GapReason::AbortedTransaction
            }
            _ => GapReason::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(partition: i32, from: i64, to: i64) -> Gap {
        Gap {
            partition,
            from,
            to,
        }
    }

    #[test]
    fn consecutive_offsets_and_re_deliveries_are_not_gaps() {
        let mut audit = ContinuityAudit::new(false);
        audit.assigned(0, Some(10));
        for offset in 10..20 {
            assert_eq!(audit.observe(0, offset), None);
        }
        // A rebalance handed the partition back from an earlier commit: re-read, not a gap.
        assert_eq!(audit.observe(0, 15), None);
        assert_eq!(audit.observe(0, 16), None);
    }

    #[test]
    fn a_jump_is_a_gap_also_at_the_first_record_after_assignment() {
        let mut audit = ContinuityAudit::new(false);
        audit.assigned(3, Some(100));
        assert_eq!(audit.observe(3, 104), Some(gap(3, 100, 104)));
        assert_eq!(audit.observe(3, 105), None);
        assert_eq!(audit.observe(3, 110), Some(gap(3, 106, 110)));
        assert_eq!(gap(3, 106, 110).len(), 4);
    }

    #[test]
    fn without_a_known_start_the_first_record_sets_the_expectation() {
        let mut audit = ContinuityAudit::new(false);
        audit.assigned(0, None);
        assert_eq!(audit.observe(0, 42), None);
        assert_eq!(audit.observe(0, 44), Some(gap(0, 43, 44)));
    }

    #[test]
    fn a_rewind_by_the_stage_moves_the_expectation() {
        let mut audit = ContinuityAudit::new(false);
        audit.assigned(0, Some(0));
        assert_eq!(audit.observe(0, 0), None);
        audit.seeked(0, Some(0));
        assert_eq!(audit.observe(0, 0), None);
        audit.seeked(0, None);
        assert_eq!(audit.observe(0, 7), None);
    }

    #[test]
    fn records_the_probe_finds_with_no_marker_among_them_are_unknown() {
        // The silent-loss class: the broker holds 4042..4045, the consumer never got them.
        let mut audit = ContinuityAudit::new(false);
        let g = gap(0, 4042, 4046);
        let probe = Probe {
            records: vec![4042, 4043, 4044, 4045],
            complete: true,
            log_start: None,
        };
        assert!(audit.needs_probe(&g));
        assert_eq!(audit.classify(&g, Some(&probe)), GapReason::Unknown);
        assert!(!GapReason::Unknown.is_routine());
    }

    #[test]
    fn offsets_without_records_are_markers_and_teach_that_the_partition_is_transactional() {
        let mut audit = ContinuityAudit::new(false);
        let marker = gap(1, 77, 78);
        assert!(audit.needs_probe(&marker));
        let probe = Probe {
            records: vec![],
            complete: true,
            log_start: None,
        };
        assert_eq!(
            audit.classify(&marker, Some(&probe)),
            GapReason::TransactionMarker
        );
        // From now on a one-record gap there needs no probe.
        let next = gap(1, 155, 156);
        assert!(!audit.needs_probe(&next));
        assert_eq!(audit.classify(&next, None), GapReason::TransactionMarker);
        // A bigger one does: it may be aborted data.
        assert!(audit.needs_probe(&gap(1, 200, 251)));
    }

    #[test]
    fn records_with_a_marker_among_them_are_aborted_data() {
        let mut audit = ContinuityAudit::new(false);
        let g = gap(0, 10, 61);
        let probe = Probe {
            records: (10..60).collect(),
            complete: true,
            log_start: None,
        };
        assert_eq!(
            audit.classify(&g, Some(&probe)),
            GapReason::AbortedTransaction
        );
    }

    #[test]
    fn an_incomplete_or_failed_probe_explains_nothing() {
        let mut audit = ContinuityAudit::new(false);
        let g = gap(0, 10, 20);
        let partial = Probe {
            records: vec![10, 11],
            complete: false,
            log_start: None,
        };
        assert_eq!(audit.classify(&g, Some(&partial)), GapReason::Unknown);
        assert_eq!(audit.classify(&g, None), GapReason::Unknown);
    }

    #[test]
    fn compaction_and_offset_resets_explain_gaps_without_a_probe() {
        let mut compacted = ContinuityAudit::new(true);
        let g = gap(0, 5, 9);
        assert!(!compacted.needs_probe(&g));
        assert_eq!(compacted.classify(&g, None), GapReason::Compaction);

        let mut audit = ContinuityAudit::new(false);
        audit.offset_reset();
        assert!(!audit.needs_probe(&g));
        assert_eq!(audit.classify(&g, None), GapReason::Seek);
        // The reset explains one gap, not the next.
        assert_eq!(audit.classify(&g, None), GapReason::Unknown);
    }

    #[test]
    fn offsets_below_the_log_start_were_deleted_and_the_consumer_was_reset_past_them() {
        let mut audit = ContinuityAudit::new(false);
        let g = gap(0, 10, 50);
        let probe = Probe {
            records: vec![],
            complete: true,
            log_start: Some(50),
        };
        assert_eq!(audit.classify(&g, Some(&probe)), GapReason::Seek);
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut audit = ContinuityAudit::new(false);
        audit.assigned(0, Some(10));
        audit.revoked(0);
        assert_eq!(audit.observe(0, 50), None);
    }
}
