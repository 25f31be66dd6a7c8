//! Exactly-once: each batch is one Kafka transaction, and this module decides what a failed
//! transaction call means.
//!
//! librdkafka sorts transaction errors into three kinds, and each asks for its own answer:
//! - *retriable* (a timeout while the coordinator is away, e.g. during a broker restart): the
//!   same call may simply be made again;
//! - *abortable* (the group lost this member during a broker restart, a delivery failed): the
//!   transaction is dead but the producer is fine; abort it, and the batch is done again;
//! - *fatal* (this producer was fenced by a newer one with the same transactional id): the
//!   producer can do nothing more; the process must stop and let its successor work.
//!
//! Treating every error as fatal made a stage in exactly-once mode exit whenever its broker
//! restarted; treating every error as retriable would spin forever on a fenced producer.

use super::delivery::AckingProducer;
use super::RunError;
use crate::shutdown::Shutdown;
use crate::watchdog::Watchdog;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;
use std::time::Duration;

/// How a transaction error is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Make the same call again.
    Retry,
    /// Abort the transaction and do the batch again.
    Abort,
    /// Stop the process.
    Fatal,
}

/// Classifies an error of a transactional producer call.
pub(crate) fn classify(error: &KafkaError) -> ErrorClass {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => ErrorClass::Fatal,
        KafkaError::Transaction(e) if e.txn_requires_abort() => ErrorClass::Abort,
        KafkaError::Transaction(e) if e.is_retriable() => ErrorClass::Retry,
        _ => ErrorClass::Fatal,
    }
}

/// What became of a batch's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Committed: its outputs are visible to `read_committed` consumers, and its input offsets
    /// (if any) are committed for the group.
    Committed,
    /// Aborted: nothing of it is visible and no offset moved; the caller does the batch again.
    Aborted,
}

/// Begins, commits and aborts the transactions of one transactional producer.
pub(crate) struct TransactionDriver<'a> {
    producer: &'a AckingProducer,
    /// How long one commit, offsets or abort call may block.
    timeout: Duration,
    shutdown: &'a Shutdown,
    /// Bounds every call: librdkafka does not always honour the timeout it is given.
    watchdog: &'a Watchdog,
}

impl<'a> TransactionDriver<'a> {
    pub(crate) fn new(
        producer: &'a AckingProducer,
        timeout: Duration,
        shutdown: &'a Shutdown,
        watchdog: &'a Watchdog,
    ) -> Self {
        TransactionDriver {
            producer,
            timeout,
            shutdown,
            watchdog,
        }
    }

    /// Begins a transaction. Only a fatal error (fenced) fails it.
    pub(crate) fn begin(&self) -> Result<(), RunError> {
        let _call = self
            .watchdog
            .client_call("beginning a transaction", self.timeout);
        self.producer
            .begin_transaction()
            .map_err(|e| RunError::Kafka(format!("beginning a transaction: {e}")))
    }

    /// Adds `offsets` (if any) to the open transaction and commits it. Retriable errors are
    /// retried until the broker answers or a stop is requested; an abortable error aborts the
    /// transaction (`Ok(Outcome::Aborted)`); a fatal one is returned.
    pub(crate) fn commit(
        &self,
        offsets: Option<(&TopicPartitionList, &ConsumerGroupMetadata)>,
    ) -> Result<Outcome, RunError> {
        self.wait_for_deliveries();
        if let Some((offsets, group)) = offsets {
            let sent = self.retrying("adding offsets to the transaction", || {
                let _call = self
                    .watchdog
                    .client_call("adding offsets to the transaction", self.timeout);
                self.producer
                    .send_offsets_to_transaction(offsets, group, self.timeout)
            })?;
            if sent == Outcome::Aborted {
                return Ok(Outcome::Aborted);
            }
        }
        self.retrying("committing the transaction", || {
            let _call = self
                .watchdog
                .client_call("committing the transaction", self.timeout);
            self.producer.commit_transaction(self.timeout)
        })
    }

    /// Waits until every output of the transaction is acknowledged (or the timeout passes;
    /// the commit then reports what is missing), sending what lingers at once.
    ///
    /// `commit_transaction` flushes too, but through rust-rdkafka's `flush`, which polls in
    /// 100 ms steps for delivery reports that a `ThreadedProducer`'s own thread takes: a
    /// commit with outputs still in flight slept the full 100 ms (half the commits in
    /// `scripts/bench` took 101 ms, the rest 0-4 ms). librdkafka's own flush waits on the
    /// count of messages in flight, which that thread brings to zero, and treats `linger.ms`
    /// as elapsed meanwhile; the flush inside the commit then finds nothing left.
    fn wait_for_deliveries(&self) {
        let timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        let _call = self
            .watchdog
            .client_call("flushing the transaction's outputs", self.timeout);
        // SAFETY: the pointer is the live producer's own handle, valid while `self.producer`
        // is borrowed; rd_kafka_flush may be called from any thread. Its result is not
        // needed: a timeout shows again, with its cause, in the commit that follows.
        unsafe {
            rdkafka::bindings::rd_kafka_flush(self.producer.client().native_ptr(), timeout_ms);
        }
    }

    /// Makes `call` until it succeeds (`Committed`), aborting the transaction on an abortable
    /// error (`Aborted`).
    fn retrying(
        &self,
        what: &str,
        mut call: impl FnMut() -> Result<(), KafkaError>,
    ) -> Result<Outcome, RunError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let error = match call() {
                Ok(()) => return Ok(Outcome::Committed),
                Err(e) => e,
            };
            match classify(&error) {
                ErrorClass::Retry if !self.shutdown.requested() => {
                    tracing::warn!(error = %error, "{what} failed; retrying");
                    self.shutdown.sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                ErrorClass::Retry | ErrorClass::Abort => {
                    tracing::warn!(error = %error, "{what} failed; aborting the transaction, the batch is done again");
                    self.abort()?;
                    return Ok(Outcome::Aborted);
                }
                ErrorClass::Fatal => {
                    // Nothing more can be sent; an abort may still tell the coordinator early.
                    let _call = self
                        .watchdog
                        .client_call("aborting the transaction", self.timeout);
                    let _ = self.producer.abort_transaction(self.timeout);
                    return Err(RunError::Kafka(format!("{what}: {error}")));
                }
            }
        }
    }

    /// Aborts the open transaction, retrying while the coordinator cannot be reached.
    pub(crate) fn abort(&self) -> Result<(), RunError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let aborted = {
                let _call = self
                    .watchdog
                    .client_call("aborting the transaction", self.timeout);
                self.producer.abort_transaction(self.timeout)
            };
            let error = match aborted {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if classify(&error) != ErrorClass::Retry || self.shutdown.requested() {
                return Err(RunError::Kafka(format!(
                    "aborting the transaction: {error}"
                )));
            }
            tracing::warn!(error = %error, "aborting the transaction failed; retrying");
            self.shutdown.sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode;

    #[test]
    fn errors_that_are_not_transaction_errors_are_fatal() {
        // Anything librdkafka did not classify as a transaction error is not safe to retry.
        let error = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(classify(&error), ErrorClass::Fatal);
    }
}
