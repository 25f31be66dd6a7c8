//! What the Schema Registry and the REST Proxy clients share: how the HTTP client is made, and
//! how an HTTP outcome becomes a [`Failure`]. Both services answer errors as
//! `{"error_code": .., "message": ..}`.

use crate::Failure;
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A blocking HTTP client with `timeout` per request, trusting the system's roots and, when
/// given, the PEM CA certificate in `ca_file` (a private CA that signed the service).
pub(crate) fn client(timeout: Duration, ca_file: Option<&Path>) -> Result<Client, String> {
    let mut builder = Client::builder().timeout(timeout);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| {
            format!(
                "the CA file {} is not a PEM certificate: {e}",
                path.display()
            )
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// A request that got no answer: the service is away (connection refused, timeout, TLS
/// handshake), or answered with something that is not HTTP.
pub(crate) fn no_answer(e: &reqwest::Error) -> String {
    // reqwest's Display stops at the outermost cause ("error sending request"); the reason an
    // operator can act on (connection refused, certificate unknown) is further down.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    crate::one_line(text)
}

/// The kind of failure an error status is: a server error may heal, a client error will not.
pub(crate) fn failure_of(status: StatusCode) -> Failure {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Failure::Unreachable
    } else {
        Failure::Refused
    }
}

/// An answer with an error status: its status, the service's error code and message.
#[derive(Debug)]
pub(crate) struct ErrorAnswer {
    pub(crate) status: StatusCode,
    pub(crate) code: Option<i64>,
    pub(crate) message: String,
}

impl ErrorAnswer {
    pub(crate) fn read(response: Response) -> ErrorAnswer {
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        ErrorAnswer {
            status,
            code: body["error_code"].as_i64(),
            message: match body["message"].as_str() {
                Some(m) => crate::one_line(m),
                None if body.is_null() => String::new(),
                None => body.to_string(),
            },
        }
    }

    pub(crate) fn failure(&self) -> Failure {
        failure_of(self.status)
    }
}

impl std::fmt::Display for ErrorAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(code) = self.code {
            write!(f, " (error {code})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// `segment` escaped for one path segment of a URL: subjects may hold `/`, `:`, spaces.
pub(crate) fn segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("posts-value"), "posts-value");
        assert_eq!(segment("a/b c:d"), "a%2Fb%20c%3Ad");
        assert_eq!(segment("ü"), "%C3%BC");
    }

    #[test]
    fn server_errors_may_heal_client_errors_do_not() {
        assert_eq!(
            failure_of(StatusCode::SERVICE_UNAVAILABLE),
            Failure::Unreachable
        );
        assert_eq!(
            failure_of(StatusCode::TOO_MANY_REQUESTS),
            Failure::Unreachable
        );
        assert_eq!(failure_of(StatusCode::CONFLICT), Failure::Refused);
        assert_eq!(failure_of(StatusCode::UNAUTHORIZED), Failure::Refused);
    }
}
