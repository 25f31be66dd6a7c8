//! The source loop: poll the plugin, produce what it emits, stop cleanly on a signal or when
//! the source says it is finished.

use super::ack_window::AckWindow;
use super::checkpoint::CheckpointStore;
use super::delivery::{self, Ack, AckingProducer};
use super::transaction::{Outcome, TransactionDriver};
use super::{Counters, OutputScratch, OutputTopic, ProgressLog, RunError};
use crate::observe::metrics::SOURCE_ERROR_KIND;
use crate::observe::Observer;
use crate::settings::Connection;
use crate::shutdown::Shutdown;
use crate::watchdog::Watchdog;
use plugin_host::OutputBuffer;
use plugin_host::{OutputBufferExt, SourceInstance, SourceStatus};
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
    /// Where the source's checkpoints are kept; `None` when it keeps none.
    pub checkpoints: Option<CheckpointStore>,
}

/// Runs a source until it finishes or a stop is requested, then flushes.
pub fn run_source(
    conn: &Connection,
    output: &OutputTopic,
    mut instance: SourceInstance,
    options: &SourceOptions,
    shutdown: &Shutdown,
    observer: &Arc<Observer>,
) -> Result<Counters, RunError> {
    let watchdog = Watchdog::start(Some(Arc::clone(observer)));
    let producer = delivery::create_producer(conn, options.transactional_id.as_deref(), &watchdog)?;
    let transactional = options.transactional_id.is_some();
    let (batch_size, flush_timeout) = (options.batch_size, options.flush_timeout);
    let mut stats = Counters::default();
    let mut out = OutputBuffer::default();
    let mut scratch = OutputScratch::default();
    let mut progress = ProgressLog::new(Duration::from_secs(10));
    // Each poll's acknowledgement, with the checkpoint that holds once it is complete.
    let mut acks: AckWindow<Option<String>> = AckWindow::default();
    // Read after the producer exists: under exactly-once, creating it fenced a predecessor with
    // the same id and aborted its open transaction, so the last committed checkpoint is final.
    if let Some(store) = &options.checkpoints {
        if let Some(checkpoint) = store.load(conn)? {
            instance
                .restore(&checkpoint)
                .map_err(|e| RunError::Plugin(e.0))?;
            tracing::info!(topic = %store.topic, key = %store.key, %checkpoint, "resuming from the source's checkpoint");
        }
    }
    let mut last_checkpoint_sent: Option<String> = None;
    // Its producer is up and the first poll is next: a source is ready when it produces.
    observer.health.set_ready();
    let result = loop {
        if shutdown.requested() {
            break Ok(());
        }
        let polled = {
            let _call = watchdog.guard("the source's poll", options.batch_timeout);
            instance.poll(batch_size as u32, &mut out)
        };
        let status = match polled {
            Ok(status) => status,
            Err(e) => {
                observer.metrics.error(SOURCE_ERROR_KIND);
                break Err(RunError::Plugin(e.0));
            }
        };
        let checkpoint = match &options.checkpoints {
            Some(_) => instance.checkpoint().map_err(|e| RunError::Plugin(e.0))?,
            None => None,
        };
        let records_out_before = stats.records_out;
        if transactional {
            if out.records.is_empty() {
                // Nothing to produce, nothing to commit: the checkpoint moves with records.
            } else {
                let driver = TransactionDriver::new(&producer, flush_timeout, shutdown, &watchdog);
                let checkpoint = options.checkpoints.as_ref().zip(checkpoint.as_deref());
                if let Err(e) = produce_in_transaction(
                    &driver,
                    &producer,
                    output,
                    &out,
                    &mut scratch,
                    checkpoint,
                ) {
                    break Err(e);
                }
                stats.records_out += out.records.len() as u64;
            }
        } else {
            let ack = Arc::new(Ack::default());
            for record in out.outputs(None) {
                output.send(
                    &producer,
                    &mut scratch,
                    record.key,
                    record.value,
                    None,
                    &ack,
                )?;
                stats.records_out += 1;
            }
            acks.push(ack, checkpoint);
        }
        observer
            .metrics
            .records_out(stats.records_out - records_out_before);
        let durable = match check_acks(&mut acks) {
            Ok(durable) => durable,
            Err(e) => break Err(e),
        };
        if let Err(e) = send_checkpoint(
            &producer,
            options.checkpoints.as_ref(),
            durable,
            &mut last_checkpoint_sent,
            &mut acks,
        ) {
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
    let flushed = {
        let _call = watchdog.client_call("flushing the producer", flush_timeout);
        delivery::flush(&producer, flush_timeout)
            .map_err(|e| RunError::Kafka(format!("flushing the producer: {e}")))
    };
    tracing::info!(records_out = stats.records_out, "source stopped");
    result?;
    flushed?;
    // The records are acknowledged: their checkpoint goes last, and is flushed too.
    let durable = check_acks(&mut acks)?;
    send_checkpoint(
        &producer,
        options.checkpoints.as_ref(),
        durable,
        &mut last_checkpoint_sent,
        &mut acks,
    )?;
    {
        let _call = watchdog.client_call("flushing the checkpoint", flush_timeout);
        delivery::flush(&producer, flush_timeout)
            .map_err(|e| RunError::Kafka(format!("flushing the checkpoint: {e}")))?;
    }
    check_acks(&mut acks)?;
    Ok(stats)
}

/// At-least-once: stores `durable` (the checkpoint of the last fully acknowledged poll) unless
/// it was stored already. Its own acknowledgement joins the queue, so a checkpoint that fails
/// to reach Kafka fails the source like any delivery.
fn send_checkpoint(
    producer: &AckingProducer,
    store: Option<&CheckpointStore>,
    durable: Option<String>,
    last_sent: &mut Option<String>,
    acks: &mut AckWindow<Option<String>>,
) -> Result<(), RunError> {
    let (Some(store), Some(checkpoint)) = (store, durable) else {
        return Ok(());
    };
    if last_sent.as_ref() == Some(&checkpoint) {
        return Ok(());
    }
    let ack = Arc::new(Ack::default());
    store.send(producer, &checkpoint, &ack)?;
    acks.push(ack, None);
    *last_sent = Some(checkpoint);
    Ok(())
}

/// Produces one poll's records, and the checkpoint after them, in one transaction. An aborted
/// transaction (the broker restarted, a delivery failed) is tried again with the same records:
/// the source has moved on, so they exist nowhere else.
fn produce_in_transaction(
    driver: &TransactionDriver<'_>,
    producer: &AckingProducer,
    output: &OutputTopic,
    out: &OutputBuffer,
    scratch: &mut OutputScratch,
    checkpoint: Option<(&CheckpointStore, &str)>,
) -> Result<(), RunError> {
    loop {
        driver.begin()?;
        let ack = Arc::new(Ack::default());
        for record in out.outputs(None) {
            output.send(producer, scratch, record.key, record.value, None, &ack)?;
        }
        if let Some((store, checkpoint)) = checkpoint {
            store.send(producer, checkpoint, &ack)?;
        }
        if driver.commit(None)? == Outcome::Committed {
            return Ok(());
        }
    }
}

/// Drops acknowledged polls; fails on the first delivery error. Returns the checkpoint of the
/// last poll dropped that had one: everything up to it is in Kafka.
fn check_acks(acks: &mut AckWindow<Option<String>>) -> Result<Option<String>, RunError> {
    let mut durable = None;
    acks.release_acknowledged(|checkpoint| {
        if checkpoint.is_some() {
            durable = checkpoint;
        }
    })
    .map_err(|e| e.into_run_error())?;
    Ok(durable)
}
