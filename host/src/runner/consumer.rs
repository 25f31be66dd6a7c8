//! A stage's Kafka consumer: its callbacks (rebalances, statistics, librdkafka's errors), and
//! the questions the loop asks of it and of the broker (records waiting beyond the position,
//! the group's state, where to rewind after an aborted transaction).
//!
//! The callbacks run on the loop's thread, inside `poll`; what they learn reaches the loop
//! through shared state (the assignment, the continuity audit, the client's events).

use super::continuity::ContinuityAudit;
use super::handover::HandOver;
use super::RunError;
use crate::client_events::{ClientEvents, EventsContext};
use crate::observe::{lag, Observer};
use crate::settings::{Connection, CONSUMER_DEFAULTS};
use crate::shutdown::Shutdown;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the rebalance callback tells the loop: the size of the assignment after each change,
/// with a generation so the loop sees every change.
#[derive(Default)]
pub struct AssignmentWatch {
    assigned: AtomicUsize,
    generation: AtomicU64,
    revocations: AtomicU64,
}

impl AssignmentWatch {
    /// How many times partitions were taken away from this consumer.
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// The assignment's size and its generation (changes with every rebalance).
    pub fn current(&self) -> (usize, u64) {
        (
            self.assigned.load(Ordering::Acquire),
            self.generation.load(Ordering::Acquire),
        )
    }
}

/// Logs and counts rebalances, keeps the assignment epochs and hands revoked partitions over
/// ([`HandOver`]), keeps the continuity audit's expectations, reads consumer lag from
/// librdkafka's statistics, and keeps librdkafka's errors.
pub struct StageConsumerContext {
    observer: Arc<Observer>,
    input_topic: String,
    watch: Arc<AssignmentWatch>,
    events: Arc<ClientEvents>,
    audit: Arc<Mutex<ContinuityAudit>>,
    /// Hands revoked partitions over; the loop's drain reports through it too.
    pub handover: HandOver,
}

impl ClientContext for StageConsumerContext {
    crate::forward_client_events!(events);

    fn stats_raw(&self, statistics: &[u8]) {
        match lag::parse_statistics(statistics, &self.input_topic) {
            Ok(lags) => {
                let held = self.handover.ledger().held().keys().copied().collect();
                self.observer.update_lag(&self.input_topic, lags, &held);
            }
            Err(e) => tracing::debug!(error = %e, "unreadable librdkafka statistics"),
        }
    }
}

impl ConsumerContext for StageConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = %describe(tpl), "partitions assigned");
                self.events.rebalanced();
                self.handover.ledger().assign(&partitions_of(tpl));
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
                self.events.rebalanced();
                let revoked = partitions_of(tpl);
                // Before the partitions go: commit what is finished of them.
                self.handover.revoke(consumer, &revoked);
                if tpl.count() > 0 {
                    self.watch.revocations.fetch_add(1, Ordering::AcqRel);
                }
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

fn partitions_of(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The consumer of one stage, with what its callbacks share and what the loop asks of the
/// broker beside it.
pub struct StageConsumer {
    /// The librdkafka consumer, subscribed to the input topic.
    pub consumer: BaseConsumer<StageConsumerContext>,
    /// The assignment, as the rebalance callback last saw it.
    pub watch: Arc<AssignmentWatch>,
    /// librdkafka's errors (its refusals among them).
    pub events: Arc<ClientEvents>,
    /// Where a partition with no committed offset starts (`auto.offset.reset`).
    pub reset_offset: Offset,
    input_topic: String,
    group_id: String,
    /// A client of its own for the broker's watermarks, made on first use: the consumer's
    /// own connection to the partition leader may be the thing that is stuck.
    side_client: Option<BaseConsumer<EventsContext>>,
    side_client_config: rdkafka::ClientConfig,
}

impl StageConsumer {
    /// Creates the consumer of `input_topic` in `group_id` and subscribes; revoked partitions
    /// are handed over through `handover`.
    pub fn subscribe(
        conn: &Connection,
        input_topic: &str,
        group_id: &str,
        observer: Arc<Observer>,
        audit: Arc<Mutex<ContinuityAudit>>,
        handover: HandOver,
    ) -> Result<StageConsumer, RunError> {
        let mut config = conn.consumer_config(CONSUMER_DEFAULTS);
        config.set("group.id", group_id);
        if config.get("statistics.interval.ms").is_none() {
            config.set("statistics.interval.ms", lag::STATISTICS_INTERVAL_MS);
        }
        let reset_offset = match config.get("auto.offset.reset") {
            Some("latest" | "largest" | "end") => Offset::End,
            _ => Offset::Beginning,
        };
        let watch = Arc::new(AssignmentWatch::default());
        let events = Arc::new(ClientEvents::default());
        let context = StageConsumerContext {
            observer,
            input_topic: input_topic.to_string(),
            watch: Arc::clone(&watch),
            events: Arc::clone(&events),
            audit,
            handover,
        };
        let consumer: BaseConsumer<StageConsumerContext> = config
            .create_with_context(context)
            .map_err(|e| RunError::Kafka(format!("creating the consumer: {e}")))?;
        consumer
            .subscribe(&[input_topic])
            .map_err(|e| RunError::Kafka(format!("subscribing to {input_topic}: {e}")))?;
        Ok(StageConsumer {
            consumer,
            watch,
            events,
            reset_offset,
            input_topic: input_topic.to_string(),
            group_id: group_id.to_string(),
            side_client: None,
            side_client_config: conn.consumer_config(&[("group.id", "stage-host-watermarks")]),
        })
    }

    /// Names what the consumer was refused: its group, or its input topic.
    pub fn describe_refusal(&self, cause: &str) -> String {
        if cause.contains("Group authorization") {
            format!("not authorized to read group {}: {cause}", self.group_id)
        } else {
            format!(
                "not authorized to read topic {} with group {}: {cause}",
                self.input_topic, self.group_id
            )
        }
    }

    /// Leaves the group and joins it again.
    pub fn rejoin(&self) -> Result<(), RunError> {
        self.consumer.unsubscribe();
        self.consumer
            .subscribe(&[&self.input_topic])
            .map_err(|e| RunError::Kafka(format!("resubscribing to {}: {e}", self.input_topic)))
    }

    /// Records the broker holds beyond the consumer's position, summed over the assigned
    /// partitions: the high watermark asked of the broker (one small request per partition,
    /// made only after the stall timeout without a record), against `position`, which
    /// librdkafka moves past transaction markers too. `None` when the broker does not answer.
    pub fn records_waiting(&mut self) -> Option<u64> {
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
    pub fn describe_group(&self) -> String {
        let timeout = Duration::from_secs(5);
        let partitions = self
            .consumer
            .fetch_metadata(Some(&self.input_topic), timeout)
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()));
        let group = match self
            .consumer
            .fetch_group_list(Some(&self.group_id), timeout)
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

    /// After an aborted transaction: moves every assigned partition back to the group's
    /// committed offset (or where `auto.offset.reset` starts), so the aborted batch and
    /// whatever was fetched after it are read again, and tells the audit where the next
    /// records will be. Continuing from the consumer's position instead would let the next
    /// transaction commit offsets past records whose outputs were aborted: a silent loss.
    pub fn rewind_to_committed(
        &self,
        audit: &Mutex<ContinuityAudit>,
        timeout: Duration,
        shutdown: &Shutdown,
        watchdog: &crate::watchdog::Watchdog,
    ) -> Result<(), RunError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            // The assignment may be gone (a session that timed out while the transaction
            // failed revokes everything): nothing is left to rewind, and partitions assigned
            // later start at the group's committed offsets anyway. librdkafka refuses a seek
            // of no partitions (_INVALID_ARG), and retrying that would keep the loop from
            // polling, and so from ever being assigned again.
            let assignment = self.consumer.assignment();
            if assignment
                .as_ref()
                .is_ok_and(|assigned| assigned.count() == 0)
            {
                tracing::info!(
                    "no partition assigned after the aborted transaction; nothing to rewind"
                );
                return Ok(());
            }
            let rewound = {
                // Two calls, each given `timeout`.
                let _call = watchdog.client_call("rewinding to the committed offsets", timeout * 2);
                assignment
                    .and_then(|assigned| self.consumer.committed_offsets(assigned, timeout))
                    .and_then(|committed| {
                        let mut targets = TopicPartitionList::new();
                        let mut audit = audit.lock().unwrap_or_else(|e| e.into_inner());
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
                    })
            };
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
            if shutdown.requested() {
                return Err(RunError::Kafka(
                    "stopped before the consumer could be rewound after an aborted transaction; nothing past the last commit is committed".into(),
                ));
            }
            shutdown.sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
