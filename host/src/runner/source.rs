//! The source loop: poll the plugin, produce what it emits, stop cleanly on a signal or when
//! the source says it is finished.

use super::delivery::{self, Ack, AckingProducer, DeliveryContext};
use super::{OutputScratch, OutputTopic, ProgressLog, RunError, Stats};
use crate::settings::{Connection, PRODUCER_DEFAULTS};
use crate::shutdown::Shutdown;
use plugin_api::abi::OutputBuffer;
use plugin_api::host::{OutputBufferExt, SourceInstance, SourceStatus};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Runs a source until it finishes or a stop is requested, then flushes.
pub fn run_source(
    conn: &Connection,
    output: &OutputTopic,
    mut instance: SourceInstance,
    batch_size: usize,
    flush_timeout: Duration,
    shutdown: &Shutdown,
) -> Result<Stats, RunError> {
    let producer: AckingProducer = conn
        .client_config(PRODUCER_DEFAULTS)
        .create_with_context(DeliveryContext)
        .map_err(|e| RunError::Kafka(format!("creating the producer: {e}")))?;
    let mut stats = Stats::default();
    let mut out = OutputBuffer::default();
    let mut scratch = OutputScratch::default();
    let mut progress = ProgressLog::new(Duration::from_secs(10));
    let mut acks: VecDeque<Arc<Ack>> = VecDeque::new();
    let result = loop {
        if shutdown.requested() {
            break Ok(());
        }
        let status = match instance.poll(batch_size as u32, &mut out) {
            Ok(status) => status,
            Err(e) => break Err(RunError::Plugin(e.0)),
        };
        let ack = Arc::new(Ack::default());
        for record in out.outputs(None) {
            output.send(&producer, &mut scratch, record.key, record.value, &ack)?;
            stats.records_out += 1;
        }
        acks.push_back(ack);
        if let Err(e) = check_acks(&mut acks) {
            break Err(e);
        }
        progress.maybe_log(&stats);
        match status {
            SourceStatus::Ready => {}
            SourceStatus::WaitMillis(ms) => shutdown.sleep(Duration::from_millis(ms)),
            SourceStatus::Finished => {
                tracing::info!(records = stats.records_out, "source finished");
                break Ok(());
            }
        }
    };
    let flushed = delivery::flush(&producer, flush_timeout)
        .map_err(|e| RunError::Kafka(format!("flushing the producer: {e}")));
    tracing::info!(records_out = stats.records_out, "source stopped");
    result?;
    flushed?;
    check_acks(&mut acks)?;
    Ok(stats)
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
