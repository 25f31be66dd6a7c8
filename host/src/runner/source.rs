//! The source loop: poll the plugin, produce what it emits, stop cleanly on a signal or when
//! the source says it is finished.

use super::delivery::{self, Ack, AckingProducer};
use super::{OutputScratch, OutputTopic, ProgressLog, RunError, Stats};
use crate::observe::metrics::SOURCE_ERROR_KIND;
use crate::observe::Observer;
use crate::settings::Connection;
use crate::shutdown::Shutdown;
use crate::watchdog::Watchdog;
use plugin_api::abi::OutputBuffer;
use plugin_api::host::{OutputBufferExt, SourceInstance, SourceStatus};
use rdkafka::producer::Producer;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// How a source runs.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Most records per poll.
    pub batch_size: usize,
    /// How long the final flush may take.
    pub flush_timeout: Duration,
    /// Longest a poll may take before the process gives up on it.
    pub batch_timeout: Duration,
    /// `Some` for exactly-once mode: each poll's records are produced in one transaction.
    pub transactional_id: Option<String>,
}

/// Runs a source until it finishes or a stop is requested, then flushes.
pub fn run_source(
    conn: &Connection,
    output: &OutputTopic,
    mut instance: SourceInstance,
    options: &SourceOptions,
    shutdown: &Shutdown,
    observer: &Observer,
) -> Result<Stats, RunError> {
    let producer = delivery::create_producer(conn, options.transactional_id.as_deref())?;
    let transactional = options.transactional_id.is_some();
    let watchdog = Watchdog::start(options.batch_timeout);
    let (batch_size, flush_timeout) = (options.batch_size, options.flush_timeout);
    let mut stats = Stats::default();
    let mut out = OutputBuffer::default();
    let mut scratch = OutputScratch::default();
    let mut progress = ProgressLog::new(Duration::from_secs(10));
    let mut acks: VecDeque<Arc<Ack>> = VecDeque::new();
    // Its producer is up and the first poll is next: a source is ready when it produces.
    observer.health.set_ready();
    let result = loop {
        if shutdown.requested() {
            break Ok(());
        }
        let polled = {
            let _call = watchdog.guard();
            instance.poll(batch_size as u32, &mut out)
        };
        let status = match polled {
            Ok(status) => status,
            Err(e) => {
                observer.metrics.error(SOURCE_ERROR_KIND);
                break Err(RunError::Plugin(e.0));
            }
        };
        let records_out_before = stats.records_out;
        if transactional && !out.records.is_empty() {
            if let Err(e) =
                produce_in_transaction(&producer, output, &out, &mut scratch, flush_timeout)
            {
                break Err(e);
            }
            stats.records_out += out.records.len() as u64;
        } else {
            let ack = Arc::new(Ack::default());
            for record in out.outputs(None) {
                output.send(&producer, &mut scratch, record.key, record.value, &ack)?;
                stats.records_out += 1;
            }
            acks.push_back(ack);
        }
        observer
            .metrics
            .records_out(stats.records_out - records_out_before);
        if let Err(e) = check_acks(&mut acks) {
            break Err(e);
        }
        progress.maybe_log(&stats, None);
        match status {
            SourceStatus::Ready => {}
            SourceStatus::WaitMillis(ms) => shutdown.sleep(Duration::from_millis(ms)),
            SourceStatus::Finished => {
                tracing::info!(records = stats.records_out, "source finished");
                break Ok(());
            }
        }
    };
    match result {
        Ok(()) => observer.health.set_draining(),
        Err(_) => observer.health.set_failed(),
    }
    let flushed = delivery::flush(&producer, flush_timeout)
        .map_err(|e| RunError::Kafka(format!("flushing the producer: {e}")));
    tracing::info!(records_out = stats.records_out, "source stopped");
    result?;
    flushed?;
    check_acks(&mut acks)?;
    Ok(stats)
}

/// Produces one poll's records in one transaction.
fn produce_in_transaction(
    producer: &AckingProducer,
    output: &OutputTopic,
    out: &OutputBuffer,
    scratch: &mut OutputScratch,
    timeout: Duration,
) -> Result<(), RunError> {
    producer
        .begin_transaction()
        .map_err(|e| RunError::Kafka(format!("beginning a transaction: {e}")))?;
    let ack = Arc::new(Ack::default());
    let result = out
        .outputs(None)
        .try_for_each(|record| output.send(producer, scratch, record.key, record.value, &ack))
        .and_then(|()| {
            producer
                .commit_transaction(timeout)
                .map_err(|e| RunError::Kafka(format!("committing the transaction: {e}")))
        });
    if result.is_err() {
        if let Err(e) = producer.abort_transaction(timeout) {
            tracing::warn!(error = %e, "aborting the transaction failed");
        }
    }
    result
}

/// Drops acknowledged batches; fails on the first delivery error.
fn check_acks(acks: &mut VecDeque<Arc<Ack>>) -> Result<(), RunError> {
    while let Some(front) = acks.front() {
        if !front.done() {
            break;
        }
        if let Some(error) = front.error() {
            return Err(RunError::Kafka(format!("delivery failed: {error}")));
        }
        acks.pop_front();
    }
    Ok(())
}
