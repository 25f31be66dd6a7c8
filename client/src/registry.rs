//! The two Schema Registry calls a client needs: register a writer schema, and look up the
//! schema of an id a record carries.

use crate::{ClientConfig, ClientError};
use serde_json::{json, Value};
use std::time::Duration;

/// A minimal Schema Registry client.
pub struct SchemaRegistry {
    base: String,
    auth: Option<(String, String)>,
    http: reqwest::blocking::Client,
}

impl SchemaRegistry {
    /// A client for the registry in `config`.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| ClientError::Registry(e.to_string()))?;
        Ok(SchemaRegistry {
            base: config.schema_registry_url.trim_end_matches('/').to_string(),
            auth: config.schema_registry_auth.clone(),
            http,
        })
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Result<Value, ClientError> {
        let request = match &self.auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        };
        let response = request
            .send()
            .map_err(|e| ClientError::Registry(format!("{} is unreachable: {e}", self.base)))?;
        let status = response.status();
        let body: Value = response.json().unwrap_or_default();
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::Registry(format!(
                "{status}: {}",
                body["message"].as_str().unwrap_or("refused")
            )))
        }
    }

    /// Registers `schema` under `subject` (the same schema gets the same id back).
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, ClientError> {
        let body = self.send(
            self.http
                .post(format!("{}/subjects/{subject}/versions", self.base))
                .json(&json!({ "schema": schema })),
        )?;
        body["id"]
            .as_u64()
            .map(|id| id as u32)
            .ok_or_else(|| ClientError::Registry(format!("no id in the answer: {body}")))
    }

    /// The schema registered with `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<String, ClientError> {
        let body = self.send(self.http.get(format!("{}/schemas/ids/{id}", self.base)))?;
        body["schema"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Registry(format!("no schema in the answer: {body}")))
    }
}
