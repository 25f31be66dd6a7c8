//! Optional HTTP basic authentication, as Confluent's registry offers it: with credentials
//! configured, every request must carry them, or it is answered 401 with error code 401.
//!
//! It lets the local cluster exercise the clients' registry credentials
//! (`--schema-registry-auth`, `basic.auth.user.info`); over plain HTTP it protects nothing.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;

use crate::RegistryError;

/// The one user the registry accepts.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    /// The whole `Authorization` header value a request must send.
    expected: String,
}

/// A malformed `user:password` setting.
#[derive(Debug, thiserror::Error)]
#[error("basic auth must be given as user:password")]
pub struct BadCredentials;

impl BasicAuth {
    /// Parses `user:password` (the password may contain `:`).
    pub fn parse(user_password: &str) -> Result<Self, BadCredentials> {
        match user_password.split_once(':') {
            Some((user, _)) if !user.is_empty() => Ok(BasicAuth {
                expected: format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(user_password)
                ),
            }),
            _ => Err(BadCredentials),
        }
    }

    fn admits(&self, request: &Request) -> bool {
        request
            .headers()
            .get(AUTHORIZATION)
            .is_some_and(|value| value.as_bytes() == self.expected.as_bytes())
    }
}

/// Middleware: passes requests with the right credentials on, answers the rest with 401.
pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    if auth.admits(&request) {
        return next.run(request).await;
    }
    let mut response = RegistryError::Unauthorized.into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Basic realm=\"SchemaRegistry\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_and_password() {
        let auth = BasicAuth::parse("alice:se:cret").unwrap();
        // base64("alice:se:cret")
        assert_eq!(auth.expected, "Basic YWxpY2U6c2U6Y3JldA==");
        assert!(BasicAuth::parse("alice").is_err());
        assert!(BasicAuth::parse(":secret").is_err());
    }
}
