//! `stage-host --dry-run`: everything a start does short of touching Kafka. The plugin is
//! loaded (abi_stable's layout check, the plugin-API version) and constructed with its config
//! by the caller; this module then asks the Schema Registry whether the stage's output schema
//! is compatible with what its subject holds, without registering it. A hot swap runs this
//! against a new library while the old one keeps serving.

use crate::error::HostError;
use crate::settings::Connection;
use plugin_host::{StageKind, StageSpec, PLUGIN_API_VERSION};
use serde_json::{json, Value};

/// Checks the output schemas of `spec` against the registry and prints one JSON line with
/// the outcome. An incompatible schema is the registry's refusal (exit 5), as in a real run.
pub fn check_and_report(conn: &Connection, spec: &StageSpec) -> Result<(), HostError> {
    let mut schemas = vec![check_subject(
        conn,
        &format!("{}-value", spec.output_topic.name),
        &spec.output_value_schema,
    )?];
    if let Some(key) = &spec.output_key_schema {
        schemas.push(check_subject(
            conn,
            &format!("{}-key", spec.output_topic.name),
            key,
        )?);
    }
    let kind = match spec.kind {
        StageKind::Stage => "stage",
        StageKind::Source => "source",
    };
    let report = json!({
        "ok": true,
        "stage": spec.name,
        "version": spec.version,
        "kind": kind,
        "plugin_api_version": PLUGIN_API_VERSION,
        "output_topic": spec.output_topic.name,
        "schemas": schemas,
    });
    println!("{report}");
    tracing::info!(stage = %spec.name, version = %spec.version, "dry run passed");
    Ok(())
}

/// `POST /compatibility/subjects/<subject>/versions/latest`. A subject (or version) that
/// does not exist yet accepts any schema.
fn check_subject(conn: &Connection, subject: &str, schema: &str) -> Result<Value, HostError> {
    let base = conn.schema_registry_url.trim_end_matches('/');
    let url = format!("{base}/compatibility/subjects/{subject}/versions/latest");
    let client = reqwest::blocking::Client::builder()
        .timeout(conn.connect_timeout())
        .build()
        .map_err(|e| HostError::Config(format!("HTTP client: {e}")))?;
    let mut request = client
        .post(&url)
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&json!({ "schema": schema }));
    if let Some(auth) = &conn.schema_registry_auth {
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        request = request.basic_auth(user, Some(password));
    }
    let unreachable = |message: String| {
        HostError::Registry(crate::registry::RegistryError::Unreachable {
            url: conn.schema_registry_url.clone(),
            message,
        })
    };
    let response = request.send().map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body: Value = response.json().unwrap_or(Value::Null);
    if status.as_u16() == 404 {
        // 40401 subject not found, 40402 version not found: nothing to be compatible with.
        return Ok(json!({ "subject": subject, "compatible": true, "registered": false }));
    }
    if status.is_server_error() {
        return Err(unreachable(format!("{status}: {body}")));
    }
    if !status.is_success() {
        return Err(HostError::Registry(
            crate::registry::RegistryError::Refused(format!(
                "checking the schema of {subject}: {status}: {body}"
            )),
        ));
    }
    if body["is_compatible"].as_bool() == Some(true) {
        Ok(json!({ "subject": subject, "compatible": true, "registered": true }))
    } else {
        Err(HostError::Registry(
            crate::registry::RegistryError::Refused(format!(
                "the output schema is not compatible with the latest version of {subject}: {}",
                body.get("messages").cloned().unwrap_or(body.clone())
            )),
        ))
    }
}
