//! Errors and their Confluent wire form.
//!
//! Clients branch on Confluent's numeric `error_code` (the Python client raises
//! `SchemaRegistryError` carrying it, `schema_registry_converter` decides whether to retry from
//! the HTTP status), so every failure maps to the same HTTP status and code as Confluent's
//! registry, and is always sent as a JSON body `{"error_code": N, "message": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::json_response;

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The subject has no version visible to this request (Confluent 40401).
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// The subject exists but the requested version does not (Confluent 40402).
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// No schema with this id, or this schema is not registered under the subject (40403).
    #[error("Schema not found")]
    SchemaNotFound,
    /// A soft delete of a subject whose versions are all soft-deleted already (40404).
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// A permanent delete of a subject that still has live versions (40405).
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// A soft delete of a version that is soft-deleted already (40406).
    #[error(
        "Subject '{0}' Version {1} was soft deleted. Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted(String, u32),
    /// A permanent delete of a version that is still live (40407).
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, u32),
    /// `GET /config/{subject}` for a subject without its own level (40408).
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    /// The schema breaks the subject's compatibility rule (409).
    #[error("{0}")]
    Incompatible(String),
    /// The schema text is not a valid Avro schema, or uses something this registry does not
    /// support (42201).
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// The version path segment is neither a positive integer nor `latest` (42202).
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// An unknown compatibility level name (42203).
    #[error("Invalid compatibility level '{0}'. Valid values are NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE")]
    InvalidCompatibilityLevel(String),
    /// The request body is not the JSON document the endpoint expects (400, as Confluent's
    /// JSON parse error mapper answers).
    #[error("Malformed request body: {0}")]
    MalformedBody(String),
    /// No route matches the path (404).
    #[error("HTTP 404 Not Found")]
    RouteNotFound,
    /// The route exists but not for this method (405).
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// The registry requires basic auth and the request's credentials are missing or wrong
    /// (401, as Confluent's registry answers with HTTP basic authentication enabled).
    #[error("Unauthorized")]
    Unauthorized,
    /// The change could not be written to the data directory (50001), so it was not applied.
    #[error("Error in the backend data store: {0}")]
    Store(String),
}

impl RegistryError {
    /// Confluent's `error_code` for this error.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound(_) => 40402,
            Self::SchemaNotFound => 40403,
            Self::SubjectSoftDeleted(_) => 40404,
            Self::SubjectNotSoftDeleted(_) => 40405,
            Self::VersionSoftDeleted(..) => 40406,
            Self::VersionNotSoftDeleted(..) => 40407,
            Self::SubjectConfigNotFound(_) => 40408,
            Self::Incompatible(_) => 409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibilityLevel(_) => 42203,
            Self::MalformedBody(_) => 400,
            Self::RouteNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Unauthorized => 401,
            Self::Store(_) => 50001,
        }
    }

    /// The HTTP status Confluent sends with this error.
    pub fn status(&self) -> StatusCode {
        match self.error_code() {
            400 => StatusCode::BAD_REQUEST,
            401 => StatusCode::UNAUTHORIZED,
            405 => StatusCode::METHOD_NOT_ALLOWED,
            409 => StatusCode::CONFLICT,
            40400..=40499 | 404 => StatusCode::NOT_FOUND,
            42200..=42299 => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        if matches!(self, Self::Store(_)) {
            tracing::error!(error = %self, "request failed");
        }
        let body = serde_json::json!({
            "error_code": self.error_code(),
            "message": self.to_string(),
        });
        json_response(self.status(), &body)
    }
}
