//! What librdkafka reports outside of any call: its log lines and its global errors.
//!
//! librdkafka retries most failures by itself and only says so in a callback, so a stage whose
//! password is wrong, whose CA does not match, or whose ACLs refuse it would otherwise wait in
//! silence (or spin on warnings) while its calls time out with a generic "transport failure".
//! Every Kafka client of the host has a context holding one [`ClientEvents`], which:
//! - logs librdkafka's lines at most at WARN, so that a failing process prints exactly one
//!   ERROR line, its own, naming the cause;
//! - keeps the last error, so that a start-up failure can name what librdkafka saw;
//! - keeps the first *refusal* (an authentication, TLS or authorization failure), which no
//!   retry will heal: start-up stops at once, and a running stage stops with exit code 5.

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::{Arc, Mutex};

/// Why the cluster will not serve this client, whatever it retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The credentials or the TLS handshake failed.
    Authentication,
    /// An ACL denies an operation.
    Authorization,
}

/// Classifies an error code: `Some` if it is a refusal.
pub fn refusal_of(code: RDKafkaErrorCode) -> Option<Refusal> {
    use RDKafkaErrorCode as C;
    match code {
        C::Authentication | C::SaslAuthenticationFailed | C::SSL => Some(Refusal::Authentication),
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::DelegationTokenAuthorizationFailed => Some(Refusal::Authorization),
        _ => None,
    }
}

/// Classifies an error: its code, or (for a TLS failure librdkafka reports as a transport
/// failure) its text.
pub fn classify(error: &KafkaError, reason: &str) -> Option<Refusal> {
    if let Some(refusal) = error.rdkafka_error_code().and_then(refusal_of) {
        return Some(refusal);
    }
    let text = format!("{error} {reason}");
    (text.contains("SSL handshake failed") || text.contains("certificate verify failed"))
        .then_some(Refusal::Authentication)
}

/// One error librdkafka reported.
#[derive(Debug, Clone)]
pub struct ClientError {
    /// What kind of refusal it is, if it is one.
    pub refusal: Option<Refusal>,
    /// The error and librdkafka's reason, one line.
    pub message: String,
}

/// The log and error callbacks' state, shared by a client's context and its owner.
#[derive(Debug, Default)]
pub struct ClientEvents {
    last: Mutex<Option<ClientError>>,
    refused: Mutex<Option<ClientError>>,
    /// Whether a refused commit was logged since the last rebalance.
    commit_refusal_logged: std::sync::atomic::AtomicBool,
}

impl ClientEvents {
    /// For `ClientContext::log`: librdkafka's line, at most at WARN. A refused commit
    /// (`COMMITFAIL`) is expected while a group rebalances and is harmless (the host commits
    /// only the partitions it holds, and commits everything acknowledged again): the first one
    /// after each rebalance is logged at INFO with its partitions, the rest at DEBUG.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "COMMITFAIL" {
            use std::sync::atomic::Ordering;
            if self.commit_refusal_logged.swap(true, Ordering::AcqRel) {
                tracing::debug!(target: "librdkafka", "{facility} {message}");
            } else {
                tracing::info!(target: "librdkafka", "{facility} {message} (further refused commits until the next rebalance are logged at debug)");
            }
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{facility} {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{facility} {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{facility} {message}"),
        }
    }

    /// For `ClientContext::error`: keeps the error (and the first refusal), logs it at WARN.
    pub fn error(&self, error: KafkaError, reason: &str) {
        let seen = ClientError {
            refusal: classify(&error, reason),
            message: crate::error::one_line(format!("{error}: {reason}")),
        };
        tracing::warn!(target: "librdkafka", "{}", seen.message);
        if seen.refusal.is_some() {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.get_or_insert_with(|| seen.clone());
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
    }

    /// The group rebalanced: the next refused commit is logged again.
    pub fn rebalanced(&self) {
        self.commit_refusal_logged
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// The last error librdkafka reported, if any.
    pub fn last(&self) -> Option<ClientError> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first refusal librdkafka reported, if any.
    pub fn refusal(&self) -> Option<ClientError> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Implements `rdkafka::ClientContext`'s `log` and `error` for a context type with a field
/// holding an `Arc<ClientEvents>` (or a `ClientEvents`).
#[macro_export]
#[doc(hidden)]
macro_rules! forward_client_events {
    ($field:tt) => {
        fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
            self.$field.log(level, facility, message)
        }

        fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
            self.$field.error(error, reason)
        }
    };
}

/// The context of a client that needs nothing but [`ClientEvents`] (admin clients, metadata
/// probes, readers).
#[derive(Default, Clone)]
pub struct EventsContext(pub Arc<ClientEvents>);

impl ClientContext for EventsContext {
    crate::forward_client_events!(0);
}

impl ConsumerContext for EventsContext {}

impl rdkafka::producer::ProducerContext for EventsContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_tls_and_acl_failures_are_refusals_and_transport_failures_are_not() {
        let code = |c| KafkaError::Global(c);
        assert_eq!(
            classify(
                &code(RDKafkaErrorCode::Authentication),
                "SASL authentication error"
            ),
            Some(Refusal::Authentication)
        );
        assert_eq!(
            classify(
                &code(RDKafkaErrorCode::BrokerTransportFailure),
                "SSL handshake failed: certificate verify failed"
            ),
            Some(Refusal::Authentication)
        );
        assert_eq!(
            classify(&code(RDKafkaErrorCode::GroupAuthorizationFailed), ""),
            Some(Refusal::Authorization)
        );
        assert_eq!(
            classify(
                &code(RDKafkaErrorCode::BrokerTransportFailure),
                "Connection refused"
            ),
            None
        );
        assert_eq!(classify(&code(RDKafkaErrorCode::AllBrokersDown), ""), None);
    }

    #[test]
    fn keeps_the_first_refusal_and_the_last_error() {
        let events = ClientEvents::default();
        assert!(events.refusal().is_none());
        events.error(
            KafkaError::Global(RDKafkaErrorCode::TopicAuthorizationFailed),
            "topic t",
        );
        events.error(
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "down",
        );
        assert!(events.refusal().unwrap().message.contains("topic t"));
        assert!(events.last().unwrap().message.contains("down"));
    }
}
