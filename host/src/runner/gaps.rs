//! The stage's side of the continuity audit ([`super::continuity`]): it reads a gap's range
//! again when the reason needs the broker, counts and logs the gap, and applies
//! `--on-offset-gap`.

use super::continuity::{ContinuityAudit, Gap, GapReason, Probe};
use super::RunError;
use crate::client_events::EventsContext;
use crate::observe::Observer;
use crate::policy::OffsetGapPolicy;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most offsets a probe reads of one gap, and the longest it reads: enough to tell markers
/// from records, without reading a whole retention period after an offset reset.
const PROBE_MAX_OFFSETS: i64 = 10_000;
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Gaps seen by one stage process.
pub(crate) struct GapAuditor {
    /// The audit, shared with the consumer's rebalance callback.
    pub(crate) audit: Arc<Mutex<ContinuityAudit>>,
    topic: String,
    policy: OffsetGapPolicy,
    /// The client settings of the probe (`read_uncommitted`), and the probe once made.
    probe_config: ClientConfig,
    probe: Option<BaseConsumer<EventsContext>>,
    /// Gaps that are not transaction markers.
    pub(crate) unexpected: u64,
}

impl GapAuditor {
    pub(crate) fn new(
        audit: Arc<Mutex<ContinuityAudit>>,
        topic: &str,
        policy: OffsetGapPolicy,
        mut probe_config: ClientConfig,
    ) -> GapAuditor {
        probe_config
            .set("isolation.level", "read_uncommitted")
            // A group is needed for an assigned partition; nothing is committed or joined.
            .set("group.id", "stage-host-gap-probe")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // Never jump: a probe that starts below the log start must say so, not read on.
            .set("auto.offset.reset", "error");
        GapAuditor {
            audit,
            topic: topic.to_string(),
            policy,
            probe_config,
            probe: None,
            unexpected: 0,
        }
    }

    /// The record at `offset` of `partition` was delivered: audits the jump before it, if
    /// any. `Err` under `--on-offset-gap fail`.
    pub(crate) fn observe(
        &mut self,
        partition: i32,
        offset: i64,
        observer: &Observer,
    ) -> Result<(), RunError> {
        let gap = self.lock().observe(partition, offset);
        match gap {
            Some(gap) => self.report(gap, observer),
            None => Ok(()),
        }
    }

    /// The client reported an offset reset.
    pub(crate) fn offset_reset(&self) {
        self.lock().offset_reset();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ContinuityAudit> {
        self.audit.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&mut self, gap: Gap, observer: &Observer) -> Result<(), RunError> {
        let probe = if self.lock().needs_probe(&gap) {
            self.probe(&gap)
        } else {
            None
        };
        let reason = self.lock().classify(&gap, probe.as_ref());
        observer
            .metrics
            .offset_gap(&self.topic, gap.partition, reason.name(), gap.len() as u64);
        let line = format!(
            "offset gap on {}[{}]: offsets {}..={} ({} records) were not delivered; likely reason: {}",
            self.topic,
            gap.partition,
            gap.from,
            gap.to - 1,
            gap.len(),
            describe(reason)
        );
        if self.policy == OffsetGapPolicy::Fail {
            return Err(RunError::OffsetGap(format!(
                "{line} (--on-offset-gap fail: nothing past it is committed)"
            )));
        }
        if reason.is_routine() {
            tracing::debug!("{line}");
        } else {
            self.unexpected += 1;
            tracing::warn!("{line}");
        }
        Ok(())
    }

    /// Reads the gap's range with `read_uncommitted`: which offsets hold records. `None` if
    /// the probe could not be made or read nothing at all.
    fn probe(&mut self, gap: &Gap) -> Option<Probe> {
        if self.probe.is_none() {
            match self
                .probe_config
                .create_with_context(EventsContext::default())
            {
                Ok(consumer) => self.probe = Some(consumer),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the offset-gap probe");
                    return None;
                }
            }
        }
        let consumer = self.probe.as_ref()?;
        let log_start = consumer
            .fetch_watermarks(&self.topic, gap.partition, PROBE_TIMEOUT)
            .ok()
            .map(|(low, _)| low);
        if log_start.is_some_and(|start| gap.from < start) {
            return Some(Probe {
                log_start,
                ..Probe::default()
            });
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, gap.partition, Offset::Offset(gap.from))
            .ok()?;
        consumer.assign(&tpl).ok()?;
        let end = gap.to.min(gap.from + PROBE_MAX_OFFSETS);
        let deadline = Instant::now() + PROBE_TIMEOUT;
        let mut probe = Probe {
            log_start,
            ..Probe::default()
        };
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let offset = message.offset();
                    if offset < gap.to {
                        probe.records.push(offset);
                    }
                    if offset + 1 >= end {
                        probe.complete = end == gap.to;
                        break;
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "offset-gap probe"),
                None => {}
            }
        }
        let _ = consumer.unassign();
        Some(probe)
    }
}

fn describe(reason: GapReason) -> &'static str {
    match reason {
        GapReason::TransactionMarker => "transaction markers (control records of transactions)",
        GapReason::AbortedTransaction => {
            "records of an aborted transaction (skipped by read_committed)"
        }
        GapReason::Compaction => "compaction (the topic is compacted)",
        GapReason::Seek => {
            "an offset reset (auto.offset.reset, e.g. after retention deleted unread records) or a seek"
        }
        GapReason::Unknown => {
            "unknown: the broker holds records there that were not delivered, with no transaction marker among them"
        }
    }
}
