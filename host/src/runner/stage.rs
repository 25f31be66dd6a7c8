//! The stage loop: consume a batch, strip framing, call the plugin once, produce its outputs,
//! and commit the batch's offsets once the broker acknowledged every output derived from it.
//!
//! Batches are pipelined: the next batch is consumed and transformed while the previous one's
//! deliveries are in flight. Commits advance over a prefix of fully acknowledged batches only,
//! so a crash at any point re-reads records rather than losing them (at-least-once).

use super::continuity::ContinuityAudit;
use super::delivery::{self, Ack, AckingProducer};
use super::gaps::GapAuditor;
use super::liveness::{Liveness, LivenessAction, LivenessLimits};
use super::transaction::{Outcome, TransactionDriver};
use super::{OutputScratch, OutputTopic, ProgressLog, RunError, Stats};
use crate::breaker::CircuitBreaker;
use crate::client_events::{refusal_of, ClientEvents, EventsContext};
use crate::framing;
use crate::observe::{lag, Observer};
use crate::policy::{ErrorPolicy, OffsetGapPolicy};
use crate::registry::Registry;
use crate::settings::{Connection, CONSUMER_DEFAULTS};
use crate::shutdown::Shutdown;
use crate::watchdog::Watchdog;
use plugin_host::OutputBuffer;
use plugin_host::{FailureKind, InputBatchBuilder, OutputBufferExt, RecordPosition, StageInstance};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most records per plugin call, unless `--batch-size` says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// Longest wait to fill a batch after its first record, unless `--batch-wait-ms` says otherwise.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 5;
/// Batches whose outputs may await acknowledgement at once; bounds memory and re-reads.
pub const MAX_IN_FLIGHT_BATCHES: usize = 8;

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
}

/// What the consumer's rebalance callback tells the loop: the size of the assignment after
/// each change, with a generation so the loop sees every change.
#[derive(Default)]
struct AssignmentWatch {
    assigned: AtomicUsize,
    generation: AtomicU64,
}

/// Logs and counts rebalances, and reads consumer lag from librdkafka's statistics.
/// Partitions are handed over cleanly because commits only ever cover acknowledged outputs.
/// Both callbacks run on the loop's thread, inside `poll`.
struct StageConsumerContext {
    observer: Arc<Observer>,
    input_topic: String,
    watch: Arc<AssignmentWatch>,
    events: Arc<ClientEvents>,
    audit: Arc<Mutex<ContinuityAudit>>,
}

impl ClientContext for StageConsumerContext {
    crate::forward_client_events!(events);

    fn stats_raw(&self, statistics: &[u8]) {
        match lag::parse_statistics(statistics, &self.input_topic) {
            Ok(lags) => self.observer.update_lag(&self.input_topic, lags),
            Err(e) => tracing::debug!(error = %e, "unreadable librdkafka statistics"),
        }
    }
}

impl ConsumerContext for StageConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = %describe(tpl), "partitions assigned");
                self.audit_assignment(consumer, tpl);
                // Start-up is over once the loop polls; an assignment, even an empty one, makes
                // the process a member of its group.
                self.observer.health.set_ready();
                crate::status_report::report(&crate::status_report::StatusEvent::Joined {
                    partitions: tpl.count(),
                });
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = %describe(tpl), "partitions revoked");
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                self.observer.forget_lag(&self.input_topic, &revoked);
                let mut audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
                for partition in revoked {
                    audit.revoked(partition);
                }
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // After the change is applied, so the count is the whole assignment also when the
        // assignment strategy hands partitions over incrementally (cooperative-sticky).
        let assigned = consumer.assignment().map(|tpl| tpl.count()).unwrap_or(0);
        self.watch.assigned.store(assigned, Ordering::Release);
        self.watch.generation.fetch_add(1, Ordering::AcqRel);
        match rebalance {
            Rebalance::Assign(_) => self.observer.metrics.assigned(assigned),
            Rebalance::Revoke(_) => self.observer.metrics.revoked(assigned),
            Rebalance::Error(_) => {}
        }
    }
}

impl StageConsumerContext {
    /// Tells the continuity audit where each newly assigned partition should start: the
    /// group's committed offset, so a jump at the very first record is seen too.
    fn audit_assignment(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let committed = consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(5))
            .map_err(|e| tracing::debug!(error = %e, "committed offsets for the audit"))
            .ok();
        let mut audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        for element in tpl.elements() {
            let start = committed
                .as_ref()
                .and_then(|c| c.find_partition(element.topic(), element.partition()))
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            audit.assigned(element.partition(), start);
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

/// One consumed record the plugin did not get or failed, kept for the error policy.
struct FailedRecord {
    /// Index among the batch's consumed records (and its `Original` under dead-letter).
    consumed_index: usize,
    position: RecordPosition,
    kind: &'static str,
    message: String,
}

/// How many of a batch's failed records the policy skipped or dead-lettered.
#[derive(Default)]
struct Routed {
    skipped: u64,
    dead_lettered: u64,
}

/// A copy of a consumed record, kept only under the dead-letter policy.
struct Original {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
}

/// Batches whose outputs are in flight, oldest first, each with the offsets it completes.
struct InFlight {
    ack: Arc<Ack>,
    next_offsets: BTreeMap<i32, i64>,
}

/// Writer schemas the plugin knows, and ids the registry does not.
#[derive(Default)]
struct SchemaCache {
    known: HashMap<u32, ()>,
    unknown: HashMap<u32, String>,
}

/// The stage loop with everything it owns.
pub struct StageRunner<'a> {
    options: StageOptions,
    output: OutputTopic,
    registry: &'a Registry,
    instance: StageInstance,
    consumer: BaseConsumer<StageConsumerContext>,
    producer: AckingProducer,
    shutdown: Shutdown,
    schemas: SchemaCache,
    in_flight: VecDeque<InFlight>,
    stats: Stats,
    watchdog: Watchdog,
    breaker: CircuitBreaker,
    observer: Arc<Observer>,
    /// Where a partition with no committed offset starts (`auto.offset.reset`), for rewinding
    /// after an aborted transaction.
    reset_offset: Offset,
    watch: Arc<AssignmentWatch>,
    consumer_events: Arc<ClientEvents>,
    gaps: GapAuditor,
    /// Per partition, the highest offset handed to a commit (in flight or committed).
    committing: BTreeMap<i32, i64>,
    /// A client of its own for asking the broker about the input (high watermarks), made on
    /// first use: the consumer's own connection to the partition leader may be the thing
    /// that is stuck.
    side_client: Option<BaseConsumer<EventsContext>>,
    side_client_config: rdkafka::ClientConfig,
}

impl<'a> StageRunner<'a> {
    /// Creates the Kafka clients and subscribes. Nothing is consumed yet.
    pub fn new(
        conn: &Connection,
        options: StageOptions,
        output: OutputTopic,
        registry: &'a Registry,
        instance: StageInstance,
        shutdown: Shutdown,
        observer: Arc<Observer>,
    ) -> Result<Self, RunError> {
        let mut consumer_config = conn.client_config(CONSUMER_DEFAULTS);
        consumer_config.set("group.id", &options.group_id);
        if consumer_config.get("statistics.interval.ms").is_none() {
            consumer_config.set("statistics.interval.ms", lag::STATISTICS_INTERVAL_MS);
        }
        let watch = Arc::new(AssignmentWatch::default());
        let consumer_events = Arc::new(ClientEvents::default());
        let audit = Arc::new(Mutex::new(ContinuityAudit::new(options.input_compacted)));
        let gaps = GapAuditor::new(
            Arc::clone(&audit),
            &options.input_topic,
            options.on_offset_gap,
            conn.client_config(&[]),
        );
        let context = StageConsumerContext {
            observer: Arc::clone(&observer),
            input_topic: options.input_topic.clone(),
            watch: Arc::clone(&watch),
            events: Arc::clone(&consumer_events),
            audit,
        };
        let reset_offset = match consumer_config.get("auto.offset.reset") {
            Some("latest" | "largest" | "end") => Offset::End,
            _ => Offset::Beginning,
        };
        let consumer: BaseConsumer<StageConsumerContext> = consumer_config
            .create_with_context(context)
            .map_err(|e| RunError::Kafka(format!("creating the consumer: {e}")))?;
        consumer
            .subscribe(&[&options.input_topic])
            .map_err(|e| RunError::Kafka(format!("subscribing to {}: {e}", options.input_topic)))?;
        let producer = delivery::create_producer(conn, options.transactional_id.as_deref())?;
        let watchdog = Watchdog::start(options.batch_timeout);
        let breaker = CircuitBreaker::new(options.failure_window, options.max_failure_ratio);
        Ok(StageRunner {
            options,
            output,
            registry,
            instance,
            consumer,
            producer,
            shutdown,
            schemas: SchemaCache::default(),
            in_flight: VecDeque::new(),
            stats: Stats::default(),
            watchdog,
            breaker,
            observer,
            reset_offset,
            watch,
            consumer_events,
            gaps,
            committing: BTreeMap::new(),
            side_client: None,
            side_client_config: conn.client_config(&[("group.id", "stage-host-watermarks")]),
        })
    }

    /// Runs until a stop signal (then drains and returns `Ok`) or a fatal error (then commits
    /// what is acknowledged and returns the error).
    pub fn run(mut self) -> Result<Stats, RunError> {
        let result = self.run_loop();
        match result {
            Ok(()) => self.observer.health.set_draining(),
            Err(_) => self.observer.health.set_failed(),
        }
        crate::status_report::report(&crate::status_report::StatusEvent::Draining);
        let drained = self.drain();
        // Dropping the consumer closes it, which leaves the group at once.
        self.consumer.unsubscribe();
        tracing::info!(
            records_in = self.stats.records_in,
            records_out = self.stats.records_out,
            skipped = self.stats.skipped,
            dead_lettered = self.stats.dead_lettered,
            "stage stopped"
        );
        result.and(drained).map(|()| self.stats)
    }

    fn run_loop(&mut self) -> Result<(), RunError> {
        let mut batch = InputBatchBuilder::default();
        let mut out = OutputBuffer::default();
        let mut scratch = OutputScratch::default();
        let mut progress = ProgressLog::new(Duration::from_secs(10));
        let mut plugin_to_consumed: Vec<usize> = Vec::new();
        let mut positions: Vec<RecordPosition> = Vec::new();
        let mut originals: Vec<Original> = Vec::new();
        let mut failed: Vec<FailedRecord> = Vec::new();
        let mut liveness = Liveness::new(self.options.liveness, Instant::now());
        let mut seen_generation = 0;
        while !self.shutdown.requested() {
            self.check_refusals()?;
            self.watch_liveness(&mut liveness, &mut seen_generation)?;
            // Every per-batch buffer starts empty: a batch whose records all failed before the
            // plugin call must not read the previous batch's outputs.
            out.clear();
            batch.clear();
            plugin_to_consumed.clear();
            positions.clear();
            originals.clear();
            failed.clear();
            let mut next_offsets = BTreeMap::new();
            let first_consumed_at = self.fill_batch(
                &mut batch,
                &mut plugin_to_consumed,
                &mut positions,
                &mut originals,
                &mut failed,
                &mut next_offsets,
            )?;
            liveness.consumed(positions.len(), Instant::now());
            self.stats.offset_gaps = self.gaps.unexpected;
            if positions.is_empty() {
                self.commit_past_skipped_records()?;
                self.commit_acknowledged(CommitMode::Async)?;
                // Idle: lag may still change (the last commit, new records upstream).
                crate::status_report::counters(&self.stats, self.observer.lag.total());
                continue;
            }
            self.stats.records_in += positions.len() as u64;
            let metrics = &self.observer.metrics;
            metrics.records_in(positions.len() as u64);
            if !batch.is_empty() {
                let _call = self.watchdog.guard();
                self.instance
                    .process(&batch, &mut out)
                    .map_err(|e| RunError::Plugin(e.0))?;
                for failure in out.failures() {
                    failed.push(FailedRecord {
                        consumed_index: plugin_to_consumed[failure.input_index],
                        position: batch.position(failure.input_index),
                        kind: kind_name(failure.kind),
                        message: failure.message.to_string(),
                    });
                }
            }
            for failure in &failed {
                metrics.error(failure.kind);
            }
            if let Some(first) = failed.first() {
                if self.options.policy == ErrorPolicy::Fail {
                    return Err(RunError::RecordFailed(describe_failure(
                        &self.options.input_topic,
                        first,
                    )));
                }
            }
            if let Some(ratio) = self
                .breaker
                .record(positions.len() - failed.len(), failed.len())
            {
                return Err(RunError::CircuitOpen(format!(
                    "{:.0}% of the last {} records failed (limit {:.0}%); last: {}",
                    ratio * 100.0,
                    self.options.failure_window,
                    self.options.max_failure_ratio * 100.0,
                    describe_failure(
                        &self.options.input_topic,
                        failed.last().expect("failures tripped it")
                    )
                )));
            }
            let transactional = self.options.transactional_id.is_some();
            let driver =
                TransactionDriver::new(&self.producer, self.options.flush_timeout, &self.shutdown);
            if transactional {
                driver.begin()?;
            }
            let ack = Arc::new(Ack::default());
            let mut produced = 0;
            for output in out.outputs(Some(&batch)) {
                self.output
                    .send(&self.producer, &mut scratch, output.key, output.value, &ack)
                    .map_err(|e| self.refusal_or(e))?;
                produced += 1;
            }
            let routed = self
                .handle_failures(&failed, &originals, &ack)
                .map_err(|e| self.refusal_or(e))?;
            if transactional {
                let offsets = self.offsets_list(&next_offsets)?;
                let group = self
                    .consumer
                    .group_metadata()
                    .ok_or_else(|| RunError::Kafka("the consumer has no group metadata".into()))?;
                if driver.commit(Some((&offsets, &group)))? == Outcome::Aborted {
                    // Nothing of the batch is visible and its offsets did not move: read it
                    // again from the group's committed offsets.
                    self.rewind_to_committed()?;
                    continue;
                }
                self.committing.extend(&next_offsets);
            }
            self.count_batch(produced, &routed, first_consumed_at);
            if !transactional {
                self.committing.extend(&next_offsets);
                self.in_flight.push_back(InFlight { ack, next_offsets });
                self.wait_for_window()?;
                self.commit_acknowledged(CommitMode::Async)?;
            }
            progress.maybe_log(&self.stats, self.observer.lag.total());
        }
        Ok(())
    }

    /// Stops the stage when librdkafka reported a refusal (an ACL, credentials) that no retry
    /// heals: the consumer's is about reading the input with the group, the producer's about
    /// writing the output.
    fn check_refusals(&self) -> Result<(), RunError> {
        if let Some(refused) = self.consumer_events.refusal() {
            return Err(RunError::Refused(
                self.describe_read_refusal(&refused.message),
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

    /// Names what the consumer was refused: its group, or its input topic.
    fn describe_read_refusal(&self, cause: &str) -> String {
        if cause.contains("Group authorization") {
            format!(
                "not authorized to read group {}: {cause}",
                self.options.group_id
            )
        } else {
            format!(
                "not authorized to read topic {} with group {}: {cause}",
                self.options.input_topic, self.options.group_id
            )
        }
    }

    /// Runs the no-assignment and stalled-consumer guards (see [`super::liveness`]).
    fn watch_liveness(
        &mut self,
        liveness: &mut Liveness,
        seen_generation: &mut u64,
    ) -> Result<(), RunError> {
        let now = Instant::now();
        let generation = self.watch.generation.load(Ordering::Acquire);
        if generation != *seen_generation {
            *seen_generation = generation;
            liveness.assigned(self.watch.assigned.load(Ordering::Acquire), now);
        }
        let action = match liveness.check(now) {
            LivenessAction::ProbeStall => match self.records_waiting() {
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
                    self.describe_group()
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
                // Commit what is acknowledged first, so the rejoin re-reads as little as it can.
                self.commit_acknowledged(CommitMode::Sync)?;
                self.consumer.unsubscribe();
                self.consumer
                    .subscribe(&[&self.options.input_topic])
                    .map_err(|e| RunError::Kafka(format!("resubscribing to {}: {e}", self.options.input_topic)))
            }
            LivenessAction::Fail { stalled, waiting } => Err(RunError::Stalled(format!(
                "nothing consumed for {} s after rejoining group {} while {waiting} records of {} wait beyond its position",
                stalled.as_secs(),
                self.options.group_id,
                self.options.input_topic
            ))),
        }
    }

    /// Records the broker holds beyond the consumer's position, summed over the assigned
    /// partitions: the high watermark asked of the broker (one small request per partition,
    /// made only after the stall timeout without a record), against `position`, which
    /// librdkafka moves past transaction markers too. `None` when the broker does not answer.
    fn records_waiting(&mut self) -> Option<u64> {
        let timeout = Duration::from_secs(5);
        if self.side_client.is_none() {
            self.side_client = self
                .side_client_config
                .create_with_context(EventsContext::default())
                .map_err(
                    |e| tracing::warn!(error = %e, "cannot create a client to read watermarks"),
                )
                .ok();
        }
        let side = self.side_client.as_ref()?;
        let unanswered = |what: &str, e: rdkafka::error::KafkaError| {
            tracing::info!(error = %e, "stall check: no answer to {what}");
        };
        let positions = self
            .consumer
            .position()
            .map_err(|e| unanswered("the position", e))
            .ok()?;
        // A partition that has delivered nothing yet has no position; it starts at the
        // group's committed offset, or with none committed where `auto.offset.reset` says:
        // the log's start (earliest), or its end (latest: nothing waits by definition).
        let starts = self
            .consumer
            .committed_offsets(positions.clone(), timeout)
            .map_err(|e| unanswered("the committed offsets", e))
            .ok()?;
        let mut waiting = 0;
        for (element, start) in positions.elements().iter().zip(starts.elements()) {
            let (low, high) = side
                .fetch_watermarks(element.topic(), element.partition(), timeout)
                .map_err(|e| unanswered("the watermarks", e))
                .ok()?;
            let position = match (element.offset(), start.offset(), self.reset_offset) {
                (Offset::Offset(o), _, _) | (_, Offset::Offset(o), _) => o,
                (_, _, Offset::Beginning) => low,
                _ => high,
            };
            waiting += (high - position).max(0) as u64;
        }
        tracing::debug!(waiting, "stall check");
        Some(waiting)
    }

    /// The group's state and members, and the input's partition count, as the broker reports
    /// them, for the no-assignment warning.
    fn describe_group(&self) -> String {
        let timeout = Duration::from_secs(5);
        let partitions = self
            .consumer
            .fetch_metadata(Some(&self.options.input_topic), timeout)
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()));
        let group = match self
            .consumer
            .fetch_group_list(Some(&self.options.group_id), timeout)
        {
            Ok(list) => match list.groups().first() {
                Some(group) => {
                    let members: Vec<String> = group
                        .members()
                        .iter()
                        .map(|m| format!("{} ({}{})", m.id(), m.client_id(), m.client_host()))
                        .collect();
                    format!(
                        "the group is {} with {} member(s){}{}",
                        group.state(),
                        members.len(),
                        if members.is_empty() { "" } else { ": " },
                        members.join(", ")
                    )
                }
                None => "the broker does not list the group".to_string(),
            },
            Err(e) => format!("the group could not be described ({e})"),
        };
        match partitions {
            Some(n) => format!("{group}; the topic has {n} partition(s)"),
            None => group,
        }
    }

    /// Polls up to `batch_size` records: waits for the first, then takes what arrives within
    /// `batch_wait`. Returns when the first record arrived (none: the batch is empty).
    #[allow(clippy::too_many_arguments)]
    fn fill_batch(
        &mut self,
        batch: &mut InputBatchBuilder,
        plugin_to_consumed: &mut Vec<usize>,
        positions: &mut Vec<RecordPosition>,
        originals: &mut Vec<Original>,
        failed: &mut Vec<FailedRecord>,
        next_offsets: &mut BTreeMap<i32, i64>,
    ) -> Result<Option<Instant>, RunError> {
        let keep_originals = self.options.policy == ErrorPolicy::DeadLetter;
        let mut deadline: Option<Instant> = None;
        let mut first_at: Option<Instant> = None;
        // Polls wait at most this long each, so a stop signal is seen within it whatever
        // --batch-wait-ms says.
        const POLL_SLICE: Duration = Duration::from_millis(100);
        while positions.len() < self.options.batch_size && !self.shutdown.requested() {
            let timeout = match deadline {
                None => POLL_SLICE,
                Some(d) => match d.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => break,
                    left => left.min(POLL_SLICE),
                },
            };
            let message = match self.consumer.poll(timeout) {
                // Idle with nothing in hand: give the loop its turn (commits, guards).
                None if deadline.is_none() => break,
                None => continue,
                Some(Err(e)) => {
                    if e.rdkafka_error_code().and_then(refusal_of).is_some() {
                        return Err(RunError::Refused(
                            self.describe_read_refusal(&e.to_string()),
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
            let now = *first_at.get_or_insert_with(Instant::now);
            deadline.get_or_insert(now + self.options.batch_wait);
            let position = RecordPosition {
                partition: message.partition(),
                offset: message.offset(),
                timestamp_ms: message.timestamp().to_millis().unwrap_or(-1),
            };
            self.gaps
                .observe(position.partition, position.offset, &self.observer)?;
            let consumed_index = positions.len();
            positions.push(position);
            next_offsets.insert(position.partition, position.offset + 1);
            if keep_originals {
                originals.push(Original {
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers: message.headers().map(|h| h.detach()),
                });
            }
            let fail = |kind, message: String| FailedRecord {
                consumed_index,
                position,
                kind,
                message,
            };
            let Some(payload) = message.payload() else {
                failed.push(fail(
                    "decode",
                    "the record is a tombstone (null value); a stage reads Avro values".into(),
                ));
                continue;
            };
            let (schema_id, datum) = match framing::strip(payload) {
                Ok(parts) => parts,
                Err(e) => {
                    failed.push(fail("decode", e.to_string()));
                    continue;
                }
            };
            let key = match (message.key(), self.options.input_key_framed) {
                (Some(k), true) => match framing::strip(k) {
                    Ok((_, k)) => Some(k),
                    Err(e) => {
                        failed.push(fail("decode", format!("key: {e}")));
                        continue;
                    }
                },
                (key, _) => key,
            };
            if let Err(reason) = ensure_writer_schema(
                &mut self.schemas,
                self.registry,
                &mut self.instance,
                &self.shutdown,
                schema_id,
            )? {
                failed.push(fail("decode", reason));
                continue;
            }
            batch.push(key, datum, schema_id, position);
            plugin_to_consumed.push(consumed_index);
        }
        Ok(first_at)
    }

    /// Applies the skip or dead-letter policy to the batch's failed records, and says how many
    /// went which way (counted once the batch is settled).
    fn handle_failures(
        &self,
        failed: &[FailedRecord],
        originals: &[Original],
        ack: &Arc<Ack>,
    ) -> Result<Routed, RunError> {
        let mut routed = Routed::default();
        for failure in failed {
            let line = describe_failure(&self.options.input_topic, failure);
            match self.options.policy {
                ErrorPolicy::Fail => unreachable!("fail policy stops before producing"),
                ErrorPolicy::Skip => {
                    tracing::warn!("skipping record: {line}");
                    routed.skipped += 1;
                }
                ErrorPolicy::DeadLetter => {
                    self.dead_letter(failure, &originals[failure.consumed_index], ack)?;
                    tracing::warn!("dead-lettered record: {line}");
                    routed.dead_lettered += 1;
                }
            }
        }
        Ok(routed)
    }

    /// Counts a settled batch: outputs produced, failures skipped or dead-lettered, and its
    /// latency from its first record consumed.
    fn count_batch(&mut self, produced: u64, routed: &Routed, first_consumed_at: Option<Instant>) {
        let metrics = &self.observer.metrics;
        self.stats.records_out += produced;
        metrics.records_out(produced);
        self.stats.skipped += routed.skipped;
        self.stats.dead_lettered += routed.dead_lettered;
        for _ in 0..routed.skipped {
            metrics.skipped();
        }
        for _ in 0..routed.dead_lettered {
            metrics.dead_lettered();
        }
        if let Some(at) = first_consumed_at {
            metrics.batch_latency(at.elapsed());
        }
    }

    fn dead_letter(
        &self,
        failure: &FailedRecord,
        original: &Original,
        ack: &Arc<Ack>,
    ) -> Result<(), RunError> {
        let topic = self
            .options
            .dead_letter_topic
            .as_deref()
            .expect("the dead-letter policy has a topic");
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
            .to_string();
        let partition = failure.position.partition.to_string();
        let offset = failure.position.offset.to_string();
        let mut headers = original.headers.clone().unwrap_or_default();
        for (key, value) in [
            ("stage.name", self.options.stage_name.as_str()),
            ("stage.plugin.version", self.options.plugin_version.as_str()),
            ("stage.error.kind", failure.kind),
            ("stage.error.message", failure.message.as_str()),
            ("stage.source.topic", self.options.input_topic.as_str()),
            ("stage.source.partition", partition.as_str()),
            ("stage.source.offset", offset.as_str()),
            ("stage.failed.at.ms", now_ms.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
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

    /// While idle: commits the consumer's position where it passed records it never delivers
    /// (transaction markers, aborted data) after the last record the stage handled. Committing
    /// only "last record + 1" would leave the group one marker short of the end of every
    /// transactional partition for ever: a lag of 1 that never clears. Idle means every
    /// record delivered so far is in a batch already handed to a commit, so the position is
    /// safe to commit behind those (at-least-once: after them in the window; exactly-once: in
    /// a transaction of its own with no records).
    fn commit_past_skipped_records(&mut self) -> Result<(), RunError> {
        let Ok(positions) = self.consumer.position() else {
            return Ok(());
        };
        let mut beyond = BTreeMap::new();
        for element in positions.elements() {
            if let (Offset::Offset(position), Some(&committing)) =
                (element.offset(), self.committing.get(&element.partition()))
            {
                if position > committing {
                    beyond.insert(element.partition(), position);
                }
            }
        }
        if beyond.is_empty() {
            return Ok(());
        }
        if self.options.transactional_id.is_some() {
            let offsets = self.offsets_list(&beyond)?;
            let group = self
                .consumer
                .group_metadata()
                .ok_or_else(|| RunError::Kafka("the consumer has no group metadata".into()))?;
            let driver =
                TransactionDriver::new(&self.producer, self.options.flush_timeout, &self.shutdown);
            driver.begin()?;
            if driver.commit(Some((&offsets, &group)))? == Outcome::Aborted {
                return self.rewind_to_committed();
            }
        } else {
            // An acknowledgement with nothing pending: done as soon as the batches before it.
            self.in_flight.push_back(InFlight {
                ack: Arc::new(Ack::default()),
                next_offsets: beyond.clone(),
            });
        }
        self.committing.extend(beyond);
        Ok(())
    }

    /// After an aborted transaction: moves every assigned partition back to the group's
    /// committed offset (or where `auto.offset.reset` starts), so the aborted batch and
    /// whatever was fetched after it are read again. Continuing from the consumer's position
    /// instead would let the next transaction commit offsets past records whose outputs were
    /// aborted: a silent loss.
    fn rewind_to_committed(&self) -> Result<(), RunError> {
        let timeout = self.options.flush_timeout;
        let mut backoff = Duration::from_millis(200);
        loop {
            let rewound = self
                .consumer
                .assignment()
                .and_then(|assigned| self.consumer.committed_offsets(assigned, timeout))
                .and_then(|committed| {
                    let mut targets = TopicPartitionList::new();
                    let mut audit = self.gaps.audit.lock().unwrap_or_else(|e| e.into_inner());
                    for element in committed.elements() {
                        let offset = match element.offset() {
                            Offset::Offset(o) => Offset::Offset(o),
                            _ => self.reset_offset,
                        };
                        // The audit expects the next record where the rewind lands.
                        let expected = match offset {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        };
                        audit.seeked(element.partition(), expected);
                        targets.add_partition_offset(
                            element.topic(),
                            element.partition(),
                            offset,
                        )?;
                    }
                    drop(audit);
                    self.consumer.seek_partitions(targets, timeout)
                });
            match rewound {
                Ok(seeked) => {
                    let failed: Vec<String> = seeked
                        .elements()
                        .iter()
                        .filter_map(|e| {
                            e.error()
                                .err()
                                .map(|err| format!("{}[{}]: {err}", e.topic(), e.partition()))
                        })
                        .collect();
                    if failed.is_empty() {
                        tracing::info!(
                            partitions = seeked.count(),
                            "rewound to the committed offsets after the aborted transaction"
                        );
                        return Ok(());
                    }
                    tracing::warn!(failed = %failed.join(", "), "rewinding failed; retrying");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rewinding to the committed offsets failed; retrying")
                }
            }
            if self.shutdown.requested() {
                return Err(RunError::Kafka(
                    "stopped before the consumer could be rewound after an aborted transaction; nothing past the last commit is committed".into(),
                ));
            }
            self.shutdown.sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
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
        while self.in_flight.len() > self.options.max_in_flight_batches {
            self.commit_acknowledged(CommitMode::Async)?;
            if self.in_flight.len() > self.options.max_in_flight_batches {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Commits the offsets of the acknowledged prefix of in-flight batches. A delivery error
    /// is fatal: nothing after it is committed.
    fn commit_acknowledged(&mut self, mode: CommitMode) -> Result<(), RunError> {
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        while let Some(front) = self.in_flight.front() {
            if !front.ack.done() {
                break;
            }
            if let Some(error) = front.ack.error() {
                self.commit(&offsets, mode)?;
                // A fatal producer error (an ACL refused the idempotent producer) purges the
                // queue: the refusal, not the purge, is the cause to name.
                self.check_refusals()?;
                return Err(error.into_run_error());
            }
            let batch = self.in_flight.pop_front().expect("front exists");
            offsets.extend(batch.next_offsets);
        }
        self.commit(&offsets, mode)
    }

    fn commit(&self, offsets: &BTreeMap<i32, i64>, mode: CommitMode) -> Result<(), RunError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = self.offsets_list(offsets)?;
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            // After a rebalance took a partition away, its commit is refused; the new owner
            // re-reads from the last committed offset (at-least-once), so this is not fatal.
            tracing::warn!(error = %e, "commit failed");
        }
        Ok(())
    }

    /// On stop: flush the producer, wait for every acknowledgement, commit synchronously.
    fn drain(&mut self) -> Result<(), RunError> {
        if let Err(e) = delivery::flush(&self.producer, self.options.flush_timeout) {
            tracing::error!(error = %e, "flushing the producer failed; unacknowledged input is not committed");
        }
        self.commit_acknowledged(CommitMode::Sync)?;
        if !self.in_flight.is_empty() {
            return Err(RunError::Kafka(format!(
                "{} batches were not acknowledged before the flush timeout; their input is not committed and will be read again",
                self.in_flight.len()
            )));
        }
        Ok(())
    }
}

/// Makes sure the plugin knows writer schema `id`. `Ok(Err(reason))` when the registry
/// has no such schema (a record failure); transient registry errors are retried here, with
/// backoff, until the registry answers or the stage is stopped.
fn ensure_writer_schema(
    schemas: &mut SchemaCache,
    registry: &Registry,
    instance: &mut StageInstance,
    shutdown: &Shutdown,
    id: u32,
) -> Result<Result<(), String>, RunError> {
    if schemas.known.contains_key(&id) {
        return Ok(Ok(()));
    }
    if let Some(reason) = schemas.unknown.get(&id) {
        return Ok(Err(reason.clone()));
    }
    let mut backoff = Duration::from_millis(200);
    let schema = loop {
        match registry.schema_by_id(id) {
            Ok(schema) => break schema,
            Err(e) if e.is_transient() => {
                if shutdown.requested() {
                    return Err(RunError::Registry(e.to_string()));
                }
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "schema lookup failed; retrying");
                shutdown.sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                let reason = format!("unknown writer schema id {id}: {e}");
                schemas.unknown.insert(id, reason.clone());
                return Ok(Err(reason));
            }
        }
    };
    match instance.add_writer_schema(id, &schema) {
        Ok(()) => {
            schemas.known.insert(id, ());
            Ok(Ok(()))
        }
        Err(e) => {
            let reason = format!("writer schema {id} is unusable: {e}");
            schemas.unknown.insert(id, reason.clone());
            Ok(Err(reason))
        }
    }
}

fn kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Decode => "decode",
        FailureKind::Transform => "transform",
        FailureKind::Panic => "panic",
        FailureKind::Encode => "encode",
    }
}

fn describe_failure(topic: &str, failure: &FailedRecord) -> String {
    format!(
        "{} error at {}[{}]@{}: {}",
        failure.kind, topic, failure.position.partition, failure.position.offset, failure.message
    )
}
