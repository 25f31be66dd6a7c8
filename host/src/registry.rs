//! The Schema Registry as the host uses it: register the output schema once at start, and
//! look writer schemas up by id, each id once (the cache lives in the runner).

use schema_registry_converter::blocking::schema_registry::{
    get_schema_by_id, post_schema, SrSettings,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use std::time::Duration;

/// A registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or answered 5xx: worth retrying.
    #[error("Schema Registry at {url} is unreachable: {message}")]
    Unreachable {
        /// Registry URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The registry answered with a definite refusal (unknown id, incompatible schema...).
    #[error("{0}")]
    Refused(String),
}

impl RegistryError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unreachable { .. })
    }
}

/// A Schema Registry client.
pub struct Registry {
    url: String,
    settings: SrSettings,
}

impl Registry {
    /// A client for the registry at `url` (optionally with basic auth `user:password`).
    pub fn new(url: &str, basic_auth: Option<&str>) -> Result<Self, RegistryError> {
        let mut builder = SrSettings::new_builder(url.trim_end_matches('/').to_string());
        builder.set_timeout(Duration::from_secs(10));
        if let Some(auth) = basic_auth {
            let (user, password) = match auth.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (auth, None),
            };
            builder.set_basic_authorization(user, password);
        }
        let settings = builder.build().map_err(|e| RegistryError::Unreachable {
            url: url.to_string(),
            message: describe(&e),
        })?;
        Ok(Registry {
            url: url.to_string(),
            settings,
        })
    }

    /// The registry URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers `schema` (Avro JSON) under `subject` and returns its id. The same schema
    /// gets the same id again; an incompatible one is refused with the registry's message.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let supplied = SuppliedSchema {
            name: None,
            schema_type: SchemaType::Avro,
            schema: schema.to_string(),
            references: vec![],
            properties: None,
            tags: None,
        };
        post_schema(&self.settings, subject.to_string(), supplied)
            .map(|registered| registered.id)
            .map_err(|e| self.classify(e, &format!("registering the schema of {subject}")))
    }

    /// The schema (Avro JSON) with registry id `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        get_schema_by_id(id, &self.settings)
            .map(|s| s.schema)
            .map_err(|e| self.classify(e, &format!("looking up schema id {id}")))
    }

    fn classify(&self, err: SRCError, what: &str) -> RegistryError {
        if err.retriable {
            RegistryError::Unreachable {
                url: self.url.clone(),
                message: describe(&err),
            }
        } else {
            RegistryError::Refused(format!("{what}: {}", describe(&err)))
        }
    }
}

/// SRCError's cause holds the registry's own message (e.g. why a schema is incompatible).
fn describe(err: &SRCError) -> String {
    let text = match &err.cause {
        Some(cause) => format!("{}: {}", err.error, cause),
        None => err.error.clone(),
    };
    crate::error::one_line(text)
}
