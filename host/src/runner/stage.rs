//! The stage loop: consume a batch, call the plugin once, produce its outputs, route its
//! failures, and commit the batch's offsets once the broker acknowledged every output derived
//! from it (or, exactly-once, in the transaction that holds them).
//!
//! Batches are pipelined under at-least-once: the next batch is consumed and transformed
//! while the previous one's deliveries are in flight, and commits advance over the
//! acknowledged prefix only, for the partitions the process holds ([`CommitLedger`]), so a
//! crash at any point re-reads records rather than losing them, and a partition is committed
//! before it is handed over ([`super::handover`]). The parts do one job each and are tested without a broker: the batch
//! ([`Batch`]), the error policy ([`FailureRouter`]), the transactions
//! ([`TransactionDriver`]), the continuity audit and the liveness guards. This loop joins
//! them to Kafka.

use super::batch::{Batch, Commit, Consumed, Delivery, WriterSchemas};
use super::commit_ledger::CommitLedger;
use super::consumer::StageConsumer;
use super::continuity::ContinuityAudit;
use super::delivery::{self, Ack, AckingProducer};
use super::failures::{FailureRouter, Route, RouterSettings};
use super::gaps::GapAuditor;
use super::handover::{self, HandOver};
use super::liveness::{Liveness, LivenessAction, LivenessLimits};
use super::schemas::RegistrySchemas;
use super::transaction::{Outcome, TransactionDriver};
use super::{Counters, OutputScratch, OutputTopic, ProgressLog, RunError};
use crate::client_events::refusal_of;
use crate::observe::metrics::FailureOutcome;
use crate::observe::Observer;
use crate::policy::{ErrorPolicy, OffsetGapPolicy};
use crate::settings::Connection;
use crate::shutdown::Shutdown;
use crate::watchdog::Watchdog;
use confluent::SchemaRegistry;
use plugin_host::{RecordPosition, StageInstance};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most records per plugin call, unless `--batch-size` says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// Longest wait to fill a batch after its first record, unless `--batch-wait-ms` says otherwise.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 5;
/// Batches whose outputs may await acknowledgement at once; bounds memory and re-reads.
pub const MAX_IN_FLIGHT_BATCHES: usize = 8;
/// How often everything acknowledged is committed again (see `commit_acknowledged`).
const FULL_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// How long an exactly-once transaction gathers batches, unless `--transaction-ms` says
/// otherwise: Kafka Streams' commit interval under exactly-once.
pub const DEFAULT_TRANSACTION_MS: u64 = 100;

/// How the loop batches and where failures go.
#[derive(Debug, Clone)]
pub struct StageOptions {
    /// Stage name (for dead-letter headers).
    pub stage_name: String,
    /// Plugin version (for dead-letter headers).
    pub plugin_version: String,
    /// Topic to consume.
    pub input_topic: String,
    /// Consumer group.
    pub group_id: String,
    /// Whether input keys carry Confluent framing to strip.
    pub input_key_framed: bool,
    /// Most records per plugin call.
    pub batch_size: usize,
    /// Longest wait to fill a batch once it has a first record.
    pub batch_wait: Duration,
    /// What to do with failed records.
    pub policy: ErrorPolicy,
    /// The dead-letter topic, for [`ErrorPolicy::DeadLetter`].
    pub dead_letter_topic: Option<String>,
    /// Batches whose outputs may be in flight at once.
    pub max_in_flight_batches: usize,
    /// Exactly-once: how long a transaction gathers batches before it commits.
    pub transaction_interval: Duration,
    /// How long a final flush may take on stop.
    pub flush_timeout: Duration,
    /// Longest a plugin call may take before the process gives up on it.
    pub batch_timeout: Duration,
    /// Circuit breaker: the window of recent records, and the failure share that trips it.
    pub failure_window: usize,
    /// See `failure_window`.
    pub max_failure_ratio: f64,
    /// `Some` for exactly-once mode: the producer's transactional id.
    pub transactional_id: Option<String>,
    /// When to warn about a missing assignment, and when a consumer counts as stalled.
    pub liveness: LivenessLimits,
    /// What a jump in the input's offsets does.
    pub on_offset_gap: OffsetGapPolicy,
    /// Whether the input topic is compacted (gaps there are expected).
    pub input_compacted: bool,
    /// Whether each output carries its input's position in `stage.source.*` headers.
    pub position_headers: bool,
}

/// The stage loop with everything it owns.
pub struct StageRunner<'a> {
    options: StageOptions,
    output: OutputTopic,
    instance: StageInstance,
    consumer: StageConsumer,
    producer: AckingProducer,
    shutdown: Shutdown,
    schemas: Box<dyn WriterSchemas + 'a>,
    /// At-least-once commit state, shared with the rebalance callbacks (see
    /// [`super::commit_ledger`]); also the assignment epochs under exactly-once.
    ledger: Arc<Mutex<CommitLedger>>,
    epochs: HeldEpochs,
    stats: Counters,
    watchdog: Watchdog,
    router: FailureRouter,
    observer: Arc<Observer>,
    gaps: GapAuditor,
    /// Exactly-once: per partition, the highest offset committed in a transaction.
    committed_in_transactions: BTreeMap<i32, i64>,
    /// When everything acknowledged was last committed.
    full_commit_at: Instant,
    /// Exactly-once: the transaction gathering batches, if one is open.
    open: Option<OpenTransaction>,
    /// Revocations seen by the consumer when the loop last looked (see [`Self::settle`]).
    revocations_seen: u64,
}

/// The ledger's partitions and epochs as of one assignment generation, so that tagging each
/// consumed record with its partition's epoch takes no lock.
#[derive(Default)]
struct HeldEpochs {
    generation: u64,
    held: BTreeMap<i32, u64>,
}

impl HeldEpochs {
    /// The epoch of `partition`'s assignment, as of `generation` (the consumer's assignment
    /// generation, which every rebalance moves after the ledger has changed).
    fn epoch_of(&mut self, partition: i32, generation: u64, ledger: &Mutex<CommitLedger>) -> u64 {
        if generation != self.generation {
            self.held = ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .held()
                .clone();
            self.generation = generation;
        }
        // A partition the ledger does not hold has no epoch: its records are never committed.
        self.held.get(&partition).copied().unwrap_or(u64::MAX)
    }
}

/// An exactly-once transaction that has batches in it and is not committed yet.
struct OpenTransaction {
    began: Instant,
    /// Per partition, the offset to commit with it: the next after its last input.
    offsets: BTreeMap<i32, i64>,
}

impl<'a> StageRunner<'a> {
    /// Creates the Kafka clients and subscribes, with writer schemas from `registry`.
    /// Nothing is consumed yet.
    pub fn new(
        conn: &Connection,
        options: StageOptions,
        output: OutputTopic,
        registry: &'a SchemaRegistry,
        instance: StageInstance,
        shutdown: Shutdown,
        observer: Arc<Observer>,
    ) -> Result<Self, RunError> {
        let schemas = Box::new(RegistrySchemas::new(registry, shutdown.clone()));
        Self::with_schemas(conn, options, output, schemas, instance, shutdown, observer)
    }

    /// [`StageRunner::new`] with the writer schemas from `schemas` (the loop's tests give a
    /// fixed set).
    pub(crate) fn with_schemas(
        conn: &Connection,
        options: StageOptions,
        output: OutputTopic,
        schemas: Box<dyn WriterSchemas + 'a>,
        instance: StageInstance,
        shutdown: Shutdown,
        observer: Arc<Observer>,
    ) -> Result<Self, RunError> {
        let audit = Arc::new(Mutex::new(ContinuityAudit::new(options.input_compacted)));
        let gaps = GapAuditor::new(
            Arc::clone(&audit),
            &options.input_topic,
            options.on_offset_gap,
            conn.consumer_config(&[]),
        );
        let watchdog = Watchdog::start(Some(Arc::clone(&observer)));
        let ledger = Arc::new(Mutex::new(CommitLedger::default()));
        let handover = HandOver {
            ledger: Arc::clone(&ledger),
            commits: options.transactional_id.is_none(),
            timeout: options.flush_timeout,
            topic: options.input_topic.clone(),
            observer: Arc::clone(&observer),
            watchdog: watchdog.clone(),
            drained: Default::default(),
        };
        let consumer = StageConsumer::subscribe(
            conn,
            &options.input_topic,
            &options.group_id,
            Arc::clone(&observer),
            audit,
            handover,
        )?;
        let producer =
            delivery::create_producer(conn, options.transactional_id.as_deref(), &watchdog)?;
        let router = FailureRouter::new(RouterSettings {
            policy: options.policy,
            failure_window: options.failure_window,
            max_failure_ratio: options.max_failure_ratio,
            input_topic: options.input_topic.clone(),
            stage_name: options.stage_name.clone(),
            plugin_version: options.plugin_version.clone(),
        });
        Ok(StageRunner {
            schemas,
            options,
            output,
            instance,
            consumer,
            producer,
            shutdown,
            ledger,
            epochs: HeldEpochs::default(),
            stats: Counters::default(),
            watchdog,
            router,
            observer,
            gaps,
            committed_in_transactions: BTreeMap::new(),
            full_commit_at: Instant::now(),
            open: None,
            revocations_seen: 0,
        })
    }

    /// Runs until a stop signal (then drains and returns `Ok`) or a fatal error (then commits
    /// what is acknowledged and returns the error).
    pub fn run(mut self) -> Result<Counters, RunError> {
        let mut result = self.run_loop();
        if self.open.is_some() {
            result = match result {
                // Stopped between batches: every batch in the open transaction is whole.
                Ok(()) => self.commit_open_transaction().map(|_| ()),
                // It may hold part of the batch that failed: abort it (its records are read
                // again from the last commit; a process with this transactional id would abort
                // it anyway).
                Err(e) => {
                    self.open = None;
                    if let Err(abort) = self.transactions().abort() {
                        tracing::warn!(error = %abort, "aborting the open transaction failed");
                    }
                    Err(e)
                }
            };
        }
        match result {
            Ok(()) => self.observer.health.set_draining(),
            Err(_) => self.observer.health.set_failed(),
        }
        crate::status_report::report(&crate::status_report::StatusEvent::Draining);
        let drained = self.drain();
        // Dropping the consumer closes it, which leaves the group at once.
        self.consumer.consumer.unsubscribe();
        tracing::info!(
            records_in = self.stats.records_in,
            records_out = self.stats.records_out,
            skipped = self.stats.skipped,
            dead_lettered = self.stats.dead_lettered,
            "stage stopped"
        );
        result.and(drained).map(|()| self.stats)
    }

    fn delivery(&self) -> Delivery {
        match self.options.transactional_id {
            Some(_) => Delivery::ExactlyOnce,
            None => Delivery::AtLeastOnce,
        }
    }

    fn run_loop(&mut self) -> Result<(), RunError> {
        let keep_originals = self.options.policy == ErrorPolicy::DeadLetter;
        let mut batch = Batch::new(self.options.input_key_framed, keep_originals);
        let mut scratch = OutputScratch::default();
        let mut progress = ProgressLog::new(Duration::from_secs(10));
        let mut liveness = Liveness::new(self.options.liveness, Instant::now());
        let mut seen_generation = 0;
        while !self.shutdown.requested() {
            self.check_refusals()?;
            self.watch_liveness(&mut liveness, &mut seen_generation)?;
            batch.clear();
            let revocations = self.consumer.watch.revocations();
            self.fill(&mut batch)?;
            if self.consumer.watch.revocations() != revocations
                && self.drop_revoked_records(&mut batch)? == Outcome::Aborted
            {
                continue;
            }
            liveness.consumed(batch.len(), Instant::now());
            self.stats.offset_gaps = self.gaps.unexpected;
            if batch.is_empty() {
                // Idle: nothing more is coming soon, so the open transaction has all it gets.
                self.commit_open_transaction()?;
                self.commit_past_skipped_records()?;
                self.commit_acknowledged()?;
                // Idle: lag may still change (the last commit, new records upstream).
                crate::status_report::counters(&self.stats, self.observer.lag.total());
                continue;
            }
            let taken = batch.len() as u64;
            self.stats.records_in += taken;
            self.stats.in_flight += taken;
            self.observer.metrics.batch_taken(taken);
            {
                let _call = self
                    .watchdog
                    .guard("the plugin call", self.options.batch_timeout);
                batch.run_plugin(&mut self.instance)?;
            }
            let route = match self.router.route(batch.len(), batch.failures()) {
                Ok(route) => route,
                Err(e) => {
                    let kinds = batch.failures().iter().map(|f| f.kind);
                    self.observer.metrics.batch_failed(kinds);
                    return Err(e);
                }
            };
            if self.settle(&batch, route, &mut scratch)? == Outcome::Committed {
                progress.maybe_log(&self.stats, self.observer.lag.total());
            }
        }
        Ok(())
    }

    /// Polls up to `batch_size` records into `batch`: waits for the first, then takes what
    /// arrives within `batch_wait`.
    fn fill(&mut self, batch: &mut Batch) -> Result<(), RunError> {
        let mut deadline: Option<Instant> = None;
        // Polls wait at most this long each, so a stop signal is seen within it whatever
        // --batch-wait-ms says.
        const POLL_SLICE: Duration = Duration::from_millis(100);
        while batch.len() < self.options.batch_size && !self.shutdown.requested() {
            let timeout = match deadline {
                None => POLL_SLICE,
                Some(d) => match d.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => break,
                    left => left.min(POLL_SLICE),
                },
            };
            let message = match self.consumer.consumer.poll(timeout) {
                // Idle with nothing in hand: give the loop its turn (commits, guards).
                None if deadline.is_none() => break,
                None => continue,
                Some(Err(e)) => {
                    if e.rdkafka_error_code().and_then(refusal_of).is_some() {
                        return Err(RunError::Refused(
                            self.consumer.describe_refusal(&e.to_string()),
                        ));
                    }
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
                        self.gaps.offset_reset();
                    }
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => m,
            };
            deadline.get_or_insert_with(|| Instant::now() + self.options.batch_wait);
            let epoch = self.epochs.epoch_of(
                message.partition(),
                self.consumer.watch.current().1,
                &self.ledger,
            );
            let position = RecordPosition {
                partition: message.partition(),
                offset: message.offset(),
                timestamp_ms: message.timestamp().to_millis().unwrap_or(-1),
            };
            self.gaps
                .observe(position.partition, position.offset, &self.observer)?;
            let consumed = Consumed {
                key: message.key(),
                value: message.payload(),
                position,
                epoch,
            };
            batch.add(
                consumed,
                || message.headers().map(|h| h.detach()),
                self.schemas.as_mut(),
                &mut self.instance,
            )?;
        }
        Ok(())
    }

    /// Produces the batch's outputs, routes its failures, and commits or queues its offsets.
    /// `Aborted`: its transaction was aborted and the consumer rewound; it will be read again.
    fn settle(
        &mut self,
        batch: &Batch,
        route: Route,
        scratch: &mut OutputScratch,
    ) -> Result<Outcome, RunError> {
        let settlement = batch.settlement(route, self.delivery());
        if let Commit::InTransaction(_) = settlement.commit {
            // A partition revoked while this batch was read, or while the open transaction
            // gathered batches, may have a new owner already, which starts at the offsets
            // committed before: committing this transaction's outputs and offsets for it
            // would duplicate its records. Abort everything since the last commit and read it
            // again from there, for the partitions this process still has.
            if self.abort_if_revoked()? == Outcome::Aborted {
                return Ok(Outcome::Aborted);
            }
            if self.open.is_none() {
                self.transactions().begin()?;
                self.open = Some(OpenTransaction {
                    began: Instant::now(),
                    offsets: BTreeMap::new(),
                });
            }
        }
        let ack = Ack::pending(0);
        for output in batch.outputs() {
            let source = self.options.position_headers.then(|| {
                (
                    self.options.input_topic.as_str(),
                    batch.position(output.input_index),
                )
            });
            self.output
                .send(
                    &self.producer,
                    scratch,
                    output.key,
                    output.value,
                    source,
                    &ack,
                )
                .map_err(|e| self.refusal_or(e))?;
        }
        for failure in settlement.failures {
            let line = self.router.describe(failure);
            match settlement.route {
                Route::Skip => tracing::warn!("skipping record: {line}"),
                Route::DeadLetter => {
                    self.dead_letter(batch, failure, &ack)
                        .map_err(|e| self.refusal_or(e))?;
                    tracing::warn!("dead-lettered record: {line}");
                }
            }
            crate::status_report::record_failed(&line);
        }
        match settlement.commit {
            Commit::InTransaction(next_offsets) => {
                let open = self.open.as_mut().expect("begun above");
                open.offsets.extend(next_offsets);
                if open.began.elapsed() >= self.options.transaction_interval
                    && self.commit_open_transaction()? == Outcome::Aborted
                {
                    return Ok(Outcome::Aborted);
                }
            }
            Commit::AfterAcknowledgement(next_offsets) => {
                self.ledger().push(ack, next_offsets);
            }
        }
        self.count_settled(batch, &settlement);
        if let Commit::AfterAcknowledgement(_) = settlement.commit {
            self.wait_for_window()?;
            self.commit_acknowledged()?;
        }
        Ok(Outcome::Committed)
    }

    /// Counts a settled batch in one step (a scrape sees all of it or none): its records
    /// processed, skipped or dead-lettered and no longer in flight, its outputs, and its
    /// latency from its first record consumed.
    fn count_settled(&mut self, batch: &Batch, settlement: &super::batch::Settlement<'_>) {
        let produced = settlement.outputs as u64;
        let failed = settlement.failures.len() as u64;
        let processed = batch.len() as u64 - failed;
        let outcome = match settlement.route {
            Route::Skip => {
                self.stats.skipped += failed;
                FailureOutcome::Skipped
            }
            Route::DeadLetter => {
                self.stats.dead_lettered += failed;
                FailureOutcome::DeadLettered
            }
        };
        self.stats.records_out += produced;
        self.stats.processed += processed;
        self.stats.in_flight -= batch.len() as u64;
        let kinds = settlement.failures.iter().map(|f| f.kind);
        self.observer
            .metrics
            .batch_settled(processed, kinds, outcome, produced);
        if let Some(at) = batch.first_consumed_at() {
            self.observer.metrics.batch_latency(at.elapsed());
        }
    }

    /// The commit ledger (shared with the rebalance callbacks, which run on this thread).
    fn ledger(&self) -> MutexGuard<'_, CommitLedger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a revocation during the fill. At-least-once: drops the batch's records of the
    /// epochs that ended, before the plugin sees them; the revocation committed what was
    /// finished, and the partitions' new owner reads these from there. Exactly-once: aborts
    /// the open transaction and rewinds, dropping the whole batch (`Aborted`).
    fn drop_revoked_records(&mut self, batch: &mut Batch) -> Result<Outcome, RunError> {
        match self.delivery() {
            Delivery::ExactlyOnce => {
                let outcome = self.abort_if_revoked()?;
                if outcome == Outcome::Aborted {
                    batch.clear();
                }
                Ok(outcome)
            }
            Delivery::AtLeastOnce => {
                let held = self.ledger().held().clone();
                batch.retain_current(|partition, epoch| held.get(&partition) == Some(&epoch));
                Ok(Outcome::Committed)
            }
        }
    }

    /// Sends the original of `failure` to the dead-letter topic, with headers saying what
    /// failed, counted against `ack`.
    fn dead_letter(
        &self,
        batch: &Batch,
        failure: &super::batch::FailedRecord,
        ack: &Arc<Ack>,
    ) -> Result<(), RunError> {
        let topic = self
            .options
            .dead_letter_topic
            .as_deref()
            .expect("the dead-letter policy has a topic");
        let original = batch
            .original(failure)
            .expect("originals are kept under the dead-letter policy");
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let headers = self.router.dead_letter_headers(failure, original, now_ms);
        delivery::send(
            &self.producer,
            topic,
            original.key.as_deref(),
            // A tombstone stays a tombstone: the original, as it was.
            original.value.as_deref(),
            Some(headers),
            ack,
        )
        .map_err(|e| {
            RunError::Kafka(format!(
                "dead-lettering {}[{}]@{} to {topic} failed: {e}",
                self.options.input_topic, failure.position.partition, failure.position.offset
            ))
        })
    }

    /// Stops the stage when librdkafka reported a refusal (an ACL, credentials) that no retry
    /// heals: the consumer's is about reading the input with the group, the producer's about
    /// writing the output.
    fn check_refusals(&self) -> Result<(), RunError> {
        if let Some(refused) = self.consumer.events.refusal() {
            return Err(RunError::Refused(
                self.consumer.describe_refusal(&refused.message),
            ));
        }
        if let Some(refused) = self.producer.context().events.refusal() {
            return Err(RunError::Refused(format!(
                "not authorized to write to topic {}: {}",
                self.output.topic, refused.message
            )));
        }
        Ok(())
    }

    /// A refusal librdkafka reported, which explains `error` (a send that failed because the
    /// producer was refused), else `error`.
    fn refusal_or(&self, error: RunError) -> RunError {
        self.check_refusals().err().unwrap_or(error)
    }

    /// Runs the no-assignment and stalled-consumer guards (see [`super::liveness`]).
    fn watch_liveness(
        &mut self,
        liveness: &mut Liveness,
        seen_generation: &mut u64,
    ) -> Result<(), RunError> {
        let now = Instant::now();
        let (assigned, generation) = self.consumer.watch.current();
        if generation != *seen_generation {
            *seen_generation = generation;
            liveness.assigned(assigned, now);
        }
        let action = match liveness.check(now) {
            LivenessAction::ProbeStall => match self.consumer.records_waiting() {
                Some(waiting) if waiting > 0 => liveness.stalled(waiting, now),
                _ => liveness.not_stalled(now),
            },
            action => action,
        };
        match action {
            LivenessAction::Continue | LivenessAction::ProbeStall => Ok(()),
            LivenessAction::WarnNoAssignment { waited } => {
                tracing::warn!(
                    "no partition of {} assigned for {} s in group {}: {}",
                    self.options.input_topic,
                    waited.as_secs(),
                    self.options.group_id,
                    self.consumer.describe_group()
                );
                Ok(())
            }
            LivenessAction::Rejoin { stalled, waiting } => {
                tracing::warn!(
                    "consumer stalled: nothing consumed for {} s while {waiting} records of {} wait beyond its position; rejoining group {}",
                    stalled.as_secs(),
                    self.options.input_topic,
                    self.options.group_id
                );
                // Leaving revokes every partition, which commits what is acknowledged first, so
                // the rejoin re-reads as little as it can.
                self.consumer.rejoin()
            }
            LivenessAction::Fail { stalled, waiting } => Err(RunError::Stalled(format!(
                "nothing consumed for {} s after rejoining group {} while {waiting} records of {} wait beyond its position",
                stalled.as_secs(),
                self.options.group_id,
                self.options.input_topic
            ))),
        }
    }

    /// While idle: commits the consumer's position where it passed records it never delivers
    /// (transaction markers, aborted data) after the last record the stage handled. Committing
    /// only "last record + 1" would leave the group one marker short of the end of every
    /// transactional partition for ever: a lag of 1 that never clears. Idle means every
    /// record delivered so far is in a batch already handed to a commit, so the position is
    /// safe to commit behind those (at-least-once: after them in the window; exactly-once: in
    /// a transaction of its own with no records).
    fn commit_past_skipped_records(&mut self) -> Result<(), RunError> {
        let Ok(positions) = self.consumer.consumer.position() else {
            return Ok(());
        };
        let mut beyond = BTreeMap::new();
        for element in positions.elements() {
            let partition = element.partition();
            let committing = match self.delivery() {
                Delivery::ExactlyOnce => self.committed_in_transactions.get(&partition).copied(),
                Delivery::AtLeastOnce => self.ledger().queued(partition),
            };
            if let (Offset::Offset(position), Some(committing)) = (element.offset(), committing) {
                if position > committing {
                    beyond.insert(partition, position);
                }
            }
        }
        if beyond.is_empty() {
            return Ok(());
        }
        match self.delivery() {
            Delivery::ExactlyOnce => {
                self.transactions().begin()?;
                self.commit_in_transaction(beyond)?;
            }
            // An acknowledgement with nothing pending: done as soon as the batches before it.
            Delivery::AtLeastOnce => self.ledger().push(Ack::pending(0), &beyond),
        }
        Ok(())
    }

    fn transactions(&self) -> TransactionDriver<'_> {
        TransactionDriver::new(
            &self.producer,
            self.options.flush_timeout,
            &self.shutdown,
            &self.watchdog,
        )
    }

    /// Commits the open transaction, if any, with its input offsets. `Aborted`: it was
    /// aborted instead and the consumer rewound; its batches will be read again.
    fn commit_open_transaction(&mut self) -> Result<Outcome, RunError> {
        if self.open.is_none() {
            return Ok(Outcome::Committed);
        }
        // Idle polls run rebalance callbacks too (see `settle`).
        if self.abort_if_revoked()? == Outcome::Aborted {
            return Ok(Outcome::Aborted);
        }
        let open = self.open.take().expect("checked above");
        self.commit_in_transaction(open.offsets)
    }

    /// When the consumer lost partitions since the loop last looked: aborts the open
    /// transaction (if any) and rewinds to the committed offsets, answering `Aborted`.
    fn abort_if_revoked(&mut self) -> Result<Outcome, RunError> {
        let revocations = self.consumer.watch.revocations();
        if revocations == self.revocations_seen {
            return Ok(Outcome::Committed);
        }
        self.revocations_seen = revocations;
        if self.open.take().is_some() {
            self.transactions().abort()?;
        }
        // A revoked partition's transactions are its next owner's business now.
        let held = self.ledger().held().clone();
        self.committed_in_transactions
            .retain(|partition, _| held.contains_key(partition));
        self.rewind_to_committed()?;
        Ok(Outcome::Aborted)
    }

    /// Adds `offsets` to the transaction begun before and commits it. `Aborted`: it was
    /// aborted instead and the consumer rewound.
    fn commit_in_transaction(&mut self, offsets: BTreeMap<i32, i64>) -> Result<Outcome, RunError> {
        let list = self.offsets_list(&offsets)?;
        let group = self
            .consumer
            .consumer
            .group_metadata()
            .ok_or_else(|| RunError::Kafka("the consumer has no group metadata".into()))?;
        if self.transactions().commit(Some((&list, &group)))? == Outcome::Aborted {
            // Nothing of the transaction is visible and its offsets did not move: read it
            // again from the group's committed offsets.
            self.rewind_to_committed()?;
            return Ok(Outcome::Aborted);
        }
        self.committed_in_transactions.extend(offsets);
        Ok(Outcome::Committed)
    }

    fn rewind_to_committed(&self) -> Result<(), RunError> {
        self.consumer.rewind_to_committed(
            &self.gaps.audit,
            self.options.flush_timeout,
            &self.shutdown,
            &self.watchdog,
        )
    }

    fn offsets_list(&self, offsets: &BTreeMap<i32, i64>) -> Result<TopicPartitionList, RunError> {
        let mut tpl = TopicPartitionList::new();
        for (&partition, &offset) in offsets {
            tpl.add_partition_offset(&self.options.input_topic, partition, Offset::Offset(offset))
                .map_err(|e| RunError::Kafka(e.to_string()))?;
        }
        Ok(tpl)
    }

    /// Bounds memory: waits while too many batches are unacknowledged.
    fn wait_for_window(&mut self) -> Result<(), RunError> {
        while self.ledger().in_flight() > self.options.max_in_flight_batches {
            self.commit_acknowledged()?;
            if self.ledger().in_flight() > self.options.max_in_flight_batches {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Commits, asynchronously, the offsets the acknowledged prefix of in-flight batches
    /// advanced, for the partitions held. A delivery error is fatal: what was acknowledged
    /// before it is committed, nothing after it.
    fn commit_acknowledged(&mut self) -> Result<(), RunError> {
        let mut offsets = BTreeMap::new();
        let released = self.ledger().release(&mut offsets);
        // An asynchronous commit the group refuses (during a rebalance: "generation id is not
        // valid") is not retried by librdkafka, and its result does not reach the consumer's
        // commit callback; a partition that gets no later batch (the stage has finished its
        // input, or that partition has) would keep its old offset for ever: lag that never
        // clears, records read again after a restart. So every few seconds everything
        // acknowledged is committed, not only what was released since: only for partitions
        // held now, in their current epoch (see `CommitLedger`).
        if self.full_commit_at.elapsed() >= FULL_COMMIT_INTERVAL {
            self.full_commit_at = Instant::now();
            offsets = self.ledger().acknowledged();
        }
        self.commit_async(&offsets)?;
        if let Err(error) = released {
            // A fatal producer error (an ACL refused the idempotent producer) purges the
            // queue: the refusal, not the purge, is the cause to name.
            self.check_refusals()?;
            return Err(error.into_run_error());
        }
        Ok(())
    }

    fn commit_async(&self, offsets: &BTreeMap<i32, i64>) -> Result<(), RunError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = self.offsets_list(offsets)?;
        if let Err(e) = self.consumer.consumer.commit(&tpl, CommitMode::Async) {
            // Not even queued (the consumer is closing); the next full commit sends it again.
            tracing::warn!(error = %e, "commit failed");
        }
        Ok(())
    }

    /// On stop: flush the producer, wait for every acknowledgement, and commit everything
    /// acknowledged synchronously, verified by reading it back. A commit the group refuses
    /// (a rebalance in progress, the coordinator moving: another replica stopping at the
    /// same time starts a rebalance) is sent again, with the consumer polled in between so
    /// the rebalance can complete, until the flush timeout ends; what is still uncommitted
    /// then is named in one WARN line and counted.
    fn drain(&mut self) -> Result<(), RunError> {
        let deadline = Instant::now() + self.options.flush_timeout;
        let flushed = {
            let _call = self
                .watchdog
                .client_call("flushing the producer", self.options.flush_timeout);
            delivery::flush(&self.producer, self.options.flush_timeout)
        };
        if let Err(e) = flushed {
            tracing::error!(error = %e, "flushing the producer failed; unacknowledged input is not committed");
        }
        let released = self.ledger().release(&mut BTreeMap::new());
        let topic = self.options.input_topic.clone();
        loop {
            // Only what is held now: a rebalance served by the poll below may have revoked
            // partitions, and the revocation committed them.
            let offsets = self.ledger().unconfirmed();
            if offsets.is_empty() {
                break;
            }
            let consumer = &self.consumer.consumer;
            let committed = {
                let left = deadline.saturating_duration_since(Instant::now());
                let _call = self.watchdog.client_call("committing on stop", left);
                handover::commit_verified(consumer, &topic, &offsets, deadline)
            };
            match committed {
                Ok(()) => {
                    self.ledger().confirm(&offsets);
                    tracing::info!(offsets = %handover::describe(&topic, &offsets), "committed on stop");
                }
                Err(e) if handover::retriable(&e) && Instant::now() < deadline => {
                    tracing::info!(error = %e, "the commit on stop was refused; sending it again once the group has settled");
                    // Serve the rebalance; what it delivers is not processed (nor committed).
                    let _ = consumer.poll(Duration::from_millis(100));
                }
                Err(e) => {
                    self.consumer
                        .consumer
                        .context()
                        .handover
                        .uncommitted(&offsets, &e, "stopping");
                    break;
                }
            }
        }
        // Leaving the group revokes what is left; its waiting was done here.
        self.consumer
            .consumer
            .context()
            .handover
            .drained
            .store(true, std::sync::atomic::Ordering::Release);
        if let Err(error) = released {
            self.check_refusals()?;
            return Err(error.into_run_error());
        }
        let in_flight = self.ledger().in_flight();
        if in_flight > 0 {
            return Err(RunError::Kafka(format!(
                "{in_flight} batches were not acknowledged before the flush timeout; their input is not committed and will be read again"
            )));
        }
        Ok(())
    }
}
