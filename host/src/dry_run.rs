//! `stage-host --dry-run`: everything a start does short of touching Kafka. The plugin is
//! loaded (abi_stable's layout check, the plugin-API version) and constructed with its config
//! by the caller; this module then asks the Schema Registry whether the stage's output schema
//! is compatible with what its subject holds, without registering it. A hot swap runs this
//! against a new library while the old one keeps serving.

use crate::error::HostError;
use crate::settings::Connection;
use confluent::{RegistryError, SchemaRegistry, Verdict};
use plugin_host::{StageKind, StageSpec, PLUGIN_API_VERSION};
use serde_json::{json, Value};

/// Checks the output schemas of `spec` against the registry and prints one JSON line with
/// the outcome. An incompatible schema is the registry's refusal (exit 5), as in a real run.
/// A source's line says whether it `resumes` (keeps checkpoints): a swap hands a source over
/// only when the old and the new version both do.
pub fn check_and_report(
    conn: &Connection,
    spec: &StageSpec,
    resumes: Option<bool>,
) -> Result<(), HostError> {
    let registry = conn.registry()?;
    let mut schemas = vec![check_subject(
        &registry,
        &format!("{}-value", spec.output_topic.name),
        &spec.output_value_schema,
    )?];
    if let Some(key) = &spec.output_key_schema {
        schemas.push(check_subject(
            &registry,
            &format!("{}-key", spec.output_topic.name),
            key,
        )?);
    }
    let kind = match spec.kind {
        StageKind::Stage => "stage",
        StageKind::Source => "source",
    };
    let mut report = json!({
        "ok": true,
        "stage": spec.name,
        "version": spec.version,
        "kind": kind,
        "plugin_api_version": PLUGIN_API_VERSION,
        "output_topic": spec.output_topic.name,
        "schemas": schemas,
    });
    if let Some(resumes) = resumes {
        report["resumes"] = resumes.into();
    }
    println!("{report}");
    tracing::info!(stage = %spec.name, version = %spec.version, "dry run passed");
    Ok(())
}

/// Asks the registry whether `schema` is compatible with `subject`'s latest version. A subject
/// that does not exist yet accepts any schema.
fn check_subject(
    registry: &SchemaRegistry,
    subject: &str,
    schema: &str,
) -> Result<Value, HostError> {
    match registry.check(subject, schema)? {
        Verdict::Compatible => {
            Ok(json!({ "subject": subject, "compatible": true, "registered": true }))
        }
        Verdict::NewSubject => {
            Ok(json!({ "subject": subject, "compatible": true, "registered": false }))
        }
        Verdict::Incompatible(reasons) => {
            Err(HostError::Registry(RegistryError::Refused(format!(
                "the output schema is not compatible with the latest version of {subject}: {}",
                reasons.join("; ")
            ))))
        }
    }
}
