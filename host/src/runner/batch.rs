//! The batch in hand: consumed records become one plugin call's input, and every consumed
//! record leaves the batch accounted for, as outputs, or as a failure for the error policy.
//!
//! Records fail here before the plugin sees them when their framing is broken, when they are
//! tombstones, or when the registry does not know their writer schema; the plugin reports its
//! own failures per record (decode, transform, panic, encode). Both kinds end in one list,
//! each failure naming its record's index among the consumed ones, so the error policy
//! (`super::failures`) treats them alike. No Kafka here: the loop hands in what it consumed.

use super::RunError;
use confluent::framing;
use plugin_host::OutputBuffer;
use plugin_host::{
    FailureKind, InputBatchBuilder, Output, OutputBufferExt, RecordPosition, StageInstance,
};
use rdkafka::message::OwnedHeaders;
use std::collections::BTreeMap;
use std::time::Instant;

/// One consumed record, as the batch takes it.
#[derive(Debug, Clone, Copy)]
pub struct Consumed<'a> {
    /// Its key, if it has one.
    pub key: Option<&'a [u8]>,
    /// Its value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Where it was read.
    pub position: RecordPosition,
    /// The epoch of its partition's assignment when it was read (see
    /// `super::commit_ledger`): a record of an epoch that is over belongs to another owner.
    pub epoch: u64,
}

/// A consumed record the plugin did not get, or failed.
#[derive(Debug, Clone)]
pub struct FailedRecord {
    /// Its index among the batch's consumed records.
    pub consumed_index: usize,
    /// Where it was read.
    pub position: RecordPosition,
    /// `decode`, `transform`, `panic` or `encode`.
    pub kind: &'static str,
    /// What went wrong, one line.
    pub message: String,
}

/// A copy of a consumed record, kept only when it may have to be dead-lettered.
#[derive(Debug, Clone, Default)]
pub struct Original {
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
    /// The headers.
    pub headers: Option<OwnedHeaders>,
}

/// Makes writer schemas known to the plugin: the registry's schema for an id, once.
pub trait WriterSchemas {
    /// Makes sure `instance` knows writer schema `id`. `Ok(Err(reason))`: the schema cannot
    /// be had (unknown id, unusable schema), a failure of the record; `Err`: the stage must
    /// stop.
    fn ensure(
        &mut self,
        id: u32,
        instance: &mut StageInstance,
    ) -> Result<Result<(), String>, RunError>;
}

/// The batch being filled and processed. Its buffers are reused from batch to batch.
#[derive(Default)]
pub struct Batch {
    input: InputBatchBuilder,
    out: OutputBuffer,
    /// Every consumed record, in order.
    positions: Vec<RecordPosition>,
    /// For each consumed record, the epoch of its partition's assignment.
    epochs: Vec<u64>,
    /// For each record of the plugin's input, its index among the consumed ones.
    plugin_to_consumed: Vec<usize>,
    originals: Vec<Original>,
    failed: Vec<FailedRecord>,
    next_offsets: BTreeMap<i32, i64>,
    first_at: Option<Instant>,
    key_framed: bool,
    keep_originals: bool,
}

impl Batch {
    /// A batch whose input keys carry Confluent framing (`key_framed`), keeping copies of the
    /// consumed records when they may be dead-lettered (`keep_originals`).
    pub fn new(key_framed: bool, keep_originals: bool) -> Batch {
        Batch {
            key_framed,
            keep_originals,
            ..Batch::default()
        }
    }

    /// Empties every buffer for the next batch: nothing of this one may leak into it (a batch
    /// of only failing records must not read the previous batch's outputs).
    pub fn clear(&mut self) {
        self.input.clear();
        self.out.clear();
        self.positions.clear();
        self.epochs.clear();
        self.plugin_to_consumed.clear();
        self.originals.clear();
        self.failed.clear();
        self.next_offsets.clear();
        self.first_at = None;
    }

    /// Takes one consumed record: into the plugin's input, or, if it cannot go there, into
    /// the failures. `headers` copies its headers, called only when originals are kept.
    pub fn add(
        &mut self,
        record: Consumed<'_>,
        headers: impl FnOnce() -> Option<OwnedHeaders>,
        schemas: &mut (impl WriterSchemas + ?Sized),
        instance: &mut StageInstance,
    ) -> Result<(), RunError> {
        self.first_at.get_or_insert_with(Instant::now);
        let consumed_index = self.positions.len();
        let position = record.position;
        self.positions.push(position);
        self.epochs.push(record.epoch);
        self.next_offsets
            .insert(position.partition, position.offset + 1);
        if self.keep_originals {
            self.originals.push(Original {
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.map(<[u8]>::to_vec),
                headers: headers(),
            });
        }
        let mut fail = |message: String| {
            self.failed.push(FailedRecord {
                consumed_index,
                position,
                kind: "decode",
                message,
            })
        };
        let Some(value) = record.value else {
            fail("the record is a tombstone (null value); a stage reads Avro values".into());
            return Ok(());
        };
        let (schema_id, datum) = match framing::strip(value) {
            Ok(parts) => parts,
            Err(e) => {
                fail(e.to_string());
                return Ok(());
            }
        };
        let key = match (record.key, self.key_framed) {
            (Some(k), true) => match framing::strip(k) {
                Ok((_, k)) => Some(k),
                Err(e) => {
                    fail(format!("key: {e}"));
                    return Ok(());
                }
            },
            (key, _) => key,
        };
        if let Err(reason) = schemas.ensure(schema_id, instance)? {
            fail(reason);
            return Ok(());
        }
        self.input.push(key, datum, schema_id, position);
        self.plugin_to_consumed.push(consumed_index);
        Ok(())
    }

    /// Keeps only the records whose partition and epoch `current` accepts: after a
    /// revocation during the fill, the records of an epoch that is over are dropped before the
    /// plugin sees them (the partition's new owner reads them from the last commit). Call it
    /// before [`Batch::run_plugin`].
    pub fn retain_current(&mut self, mut current: impl FnMut(i32, u64) -> bool) {
        let keep: Vec<bool> = self
            .positions
            .iter()
            .zip(&self.epochs)
            .map(|(p, &epoch)| current(p.partition, epoch))
            .collect();
        if keep.iter().all(|&k| k) {
            return;
        }
        // Consumed indices move down past the dropped records.
        let new_index: Vec<usize> = keep
            .iter()
            .scan(0, |kept, &k| {
                let index = *kept;
                *kept += usize::from(k);
                Some(index)
            })
            .collect();
        let mut input_kept = self.plugin_to_consumed.iter().map(|&c| keep[c]);
        self.input.retain(|_| input_kept.next().unwrap_or(false));
        self.plugin_to_consumed = self
            .plugin_to_consumed
            .iter()
            .filter(|&&c| keep[c])
            .map(|&c| new_index[c])
            .collect();
        self.failed.retain(|f| keep[f.consumed_index]);
        for failure in &mut self.failed {
            failure.consumed_index = new_index[failure.consumed_index];
        }
        retain_by(&mut self.positions, &keep);
        retain_by(&mut self.epochs, &keep);
        if self.keep_originals {
            retain_by(&mut self.originals, &keep);
        }
        self.next_offsets.clear();
        for p in &self.positions {
            self.next_offsets.insert(p.partition, p.offset + 1);
        }
        if self.positions.is_empty() {
            self.first_at = None;
        }
    }

    /// Calls the plugin once with the records that reached its input (none: no call), and
    /// adds its per-record failures to the batch's. `Err`: the whole call failed.
    pub fn run_plugin(&mut self, instance: &mut StageInstance) -> Result<(), RunError> {
        if self.input.is_empty() {
            return Ok(());
        }
        instance
            .process(&self.input, &mut self.out)
            .map_err(|e| RunError::Plugin(e.0))?;
        for failure in self.out.failures() {
            self.failed.push(FailedRecord {
                consumed_index: self.plugin_to_consumed[failure.input_index],
                position: self.input.position(failure.input_index),
                kind: kind_name(failure.kind),
                message: failure.message.to_string(),
            });
        }
        // A plugin reports failures in its own order; the policy names the first consumed.
        self.failed.sort_by_key(|f| f.consumed_index);
        Ok(())
    }

    /// Records consumed.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether nothing was consumed.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// When the first record was consumed.
    pub fn first_consumed_at(&self) -> Option<Instant> {
        self.first_at
    }

    /// The plugin's outputs, keys resolved.
    pub fn outputs(&self) -> impl Iterator<Item = Output<'_>> {
        self.out.outputs(Some(&self.input))
    }

    /// The position of the plugin's input record `input_index` (an output's source).
    pub fn position(&self, input_index: usize) -> RecordPosition {
        self.input.position(input_index)
    }

    /// The failed records, in consumption order.
    pub fn failures(&self) -> &[FailedRecord] {
        &self.failed
    }

    /// The copy of a failed record (kept only when originals are).
    pub fn original(&self, failure: &FailedRecord) -> Option<&Original> {
        self.originals.get(failure.consumed_index)
    }
}

/// How a stage delivers: outputs acknowledged, then offsets committed (at-least-once), or
/// outputs and offsets in one transaction (exactly-once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Commit a batch's offsets once every output of it is acknowledged.
    AtLeastOnce,
    /// Commit a batch's offsets in the transaction that holds its outputs.
    ExactlyOnce,
}

/// How a batch's input offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit<'b> {
    /// After its outputs are acknowledged (behind the batches before it).
    AfterAcknowledgement(&'b BTreeMap<i32, i64>),
    /// In the transaction with its outputs.
    InTransaction(&'b BTreeMap<i32, i64>),
}

/// What settling a batch does: produce its outputs, route its failures, commit its offsets.
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'b> {
    /// Outputs to produce (see [`Batch::outputs`]).
    pub outputs: usize,
    /// The failed records, each taking `route`.
    pub failures: &'b [FailedRecord],
    /// Where the failures go.
    pub route: super::failures::Route,
    /// How the batch's offsets are committed.
    pub commit: Commit<'b>,
}

impl Batch {
    /// What settling the processed batch does, its failures routed by `route` (the error
    /// policy's decision), under `delivery`.
    pub fn settlement(&self, route: super::failures::Route, delivery: Delivery) -> Settlement<'_> {
        Settlement {
            outputs: self.out.records.len(),
            failures: &self.failed,
            route,
            commit: match delivery {
                Delivery::AtLeastOnce => Commit::AfterAcknowledgement(&self.next_offsets),
                Delivery::ExactlyOnce => Commit::InTransaction(&self.next_offsets),
            },
        }
    }
}

/// Keeps the items whose index `keep` marks.
fn retain_by<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut index = 0;
    items.retain(|_| {
        index += 1;
        keep[index - 1]
    });
}

/// The name of a failure kind, as metrics and dead-letter headers spell it.
pub fn kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Decode => "decode",
        FailureKind::Transform => "transform",
        FailureKind::Panic => "panic",
        FailureKind::Encode => "encode",
    }
}
