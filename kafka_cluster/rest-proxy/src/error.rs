//! Errors in Confluent's REST Proxy format.
//!
//! Clients branch on `error_code` (for example 40002 "topic already exists", 40403 "unknown
//! topic"), not just on the HTTP status, so every failure carries both, exactly as Confluent's
//! proxy sends them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::kafka::AdminError;

/// An error answer: an HTTP status plus Confluent's `error_code` and message.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message} (error_code {error_code})")]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Confluent's error code (often the status followed by two digits).
    pub error_code: u32,
    /// Human-readable explanation.
    pub message: String,
}

/// The JSON body Confluent's proxy sends with every error.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error_code: u32,
    message: &'a str,
}

impl ApiError {
    /// Builds an error from its parts.
    pub fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }

    /// 404 for a cluster id this proxy does not serve.
    pub fn cluster_not_found(cluster_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            404,
            format!("Cluster {cluster_id} cannot be found."),
        )
    }

    /// 404 with code 40403, Confluent's answer for a topic that does not exist.
    pub fn topic_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40403,
            "This server does not host this topic-partition.",
        )
    }

    /// 400 with code 40002, Confluent's answer for creating a topic that exists.
    pub fn topic_exists(topic: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            40002,
            format!("Topic '{topic}' already exists."),
        )
    }

    /// 400 for a request body that is not what the endpoint expects.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 400, message)
    }

    /// 404 for a path this proxy does not serve.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match &err {
            AdminError::TopicExists(topic) => Self::topic_exists(topic),
            AdminError::UnknownTopic(_) => Self::topic_not_found(),
            AdminError::InvalidRequest(message) => {
                Self::new(StatusCode::BAD_REQUEST, 40002, message.clone())
            }
            AdminError::Unavailable(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, 50301, err.to_string())
            }
            AdminError::Kafka(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, 500, err.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error_code = self.error_code, "{}", self.message);
        }
        let body = ErrorBody {
            error_code: self.error_code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_errors_map_to_confluent_codes() {
        let exists = ApiError::from(AdminError::TopicExists("t".into()));
        assert_eq!(exists.status, StatusCode::BAD_REQUEST);
        assert_eq!(exists.error_code, 40002);
        assert_eq!(exists.message, "Topic 't' already exists.");

        let unknown = ApiError::from(AdminError::UnknownTopic("t".into()));
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(unknown.error_code, 40403);
    }
}
