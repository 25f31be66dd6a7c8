//! The HTTP surface: Confluent's REST paths, request bodies and response shapes.
//!
//! Request bodies are read as bytes and parsed here, whatever their content type, because
//! clients send `application/vnd.schemaregistry.v1+json`, `application/json` or
//! `application/octet-stream`. Every response, errors included, is JSON with Confluent's
//! content type; a middleware rewrites the framework's own plain-text rejections (bad path
//! encoding, oversized body) into Confluent's error shape so clients never see anything else.
//! Registry calls touch the disk under a mutex, so they run on the blocking pool.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::error::RegistryError;
use crate::registry::{Registry, VersionInfo, VersionSpec};
use crate::schema::AVRO;

/// Confluent's response content type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Shared = Arc<Registry>;
type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Response, RegistryError>;

/// Builds the router over a registry; mount it on any listener.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(test_compatibility_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(test_compatibility_version),
        )
        .route("/mode", get(mode))
        .route("/mode/{subject}", get(mode))
        .fallback(|| async { RegistryError::RouteNotFound })
        .method_not_allowed_fallback(|| async { RegistryError::MethodNotAllowed })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(registry)
}

/// Serialises `body` as a response with Confluent's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok(body: Value) -> ApiResult {
    Ok(json_response(StatusCode::OK, &body))
}

/// Rewrites an error response that is not already Confluent JSON (an extractor rejection)
/// into `{"error_code": status, "message": text}`.
async fn json_errors(response: Response) -> Response {
    let is_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == CONTENT_TYPE.as_bytes());
    let status = response.status();
    if is_ours || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => status.to_string(),
    };
    json_response(
        status,
        &json!({"error_code": status.as_u16(), "message": text}),
    )
}

/// Runs a registry call on the blocking pool; its file writes must not stall the runtime.
async fn run<T, F>(registry: &Shared, f: F) -> Result<T, RegistryError>
where
    T: Send + 'static,
    F: FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
{
    let registry = Arc::clone(registry);
    tokio::task::spawn_blocking(move || f(&registry))
        .await
        .map_err(|e| RegistryError::Store(format!("request worker failed: {e}")))?
}

/// A query flag such as `deleted=true`; the Python client sends `True`/`False`.
fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Parses a schema id path segment; a non-number names no schema (40403).
fn schema_id(text: &str) -> Result<u32, RegistryError> {
    text.parse().map_err(|_| RegistryError::SchemaNotFound)
}

/// The parts of a schema request body this registry uses.
struct SchemaRequest {
    schema: String,
    schema_type: Option<String>,
}

/// Parses `{"schema": "...", "schemaType"?: "...", "references"?: [...]}`; unknown properties
/// (metadata, ruleSet) are ignored as Confluent's clients ask for.
fn schema_request(body: &Bytes) -> Result<SchemaRequest, RegistryError> {
    let value = json_body(body)?;
    let schema = value
        .get("schema")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RegistryError::InvalidSchema("the request body has no \"schema\" string".into())
        })?
        .to_string();
    let schema_type = match value.get("schemaType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(RegistryError::InvalidSchema(format!(
                "schemaType must be a string, got {other}"
            )))
        }
    };
    match value.get("references") {
        None | Some(Value::Null) => {}
        Some(Value::Array(refs)) if refs.is_empty() => {}
        Some(_) => {
            return Err(RegistryError::InvalidSchema(
                "schema references are not supported by this registry; inline the referenced types"
                    .into(),
            ))
        }
    }
    Ok(SchemaRequest {
        schema,
        schema_type,
    })
}

fn json_body(body: &Bytes) -> Result<Value, RegistryError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RegistryError::MalformedBody(e.to_string()))?;
    if !value.is_object() {
        return Err(RegistryError::MalformedBody(
            "expected a JSON object".into(),
        ));
    }
    Ok(value)
}

fn version_json(info: &VersionInfo) -> Value {
    json!({
        "subject": info.subject,
        "version": info.version,
        "id": info.id,
        "schema": info.schema,
    })
}

async fn root() -> ApiResult {
    ok(json!({}))
}

async fn schema_types() -> ApiResult {
    ok(json!([AVRO]))
}

async fn mode() -> ApiResult {
    ok(json!({"mode": "READWRITE"}))
}

async fn schema_by_id(State(r): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let id = schema_id(&id)?;
    let schema = run(&r, move |r| r.schema_by_id(id)).await?;
    // Confluent omits schemaType for Avro.
    ok(json!({ "schema": schema }))
}

async fn raw_schema_by_id(State(r): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let id = schema_id(&id)?;
    let schema = run(&r, move |r| r.schema_by_id(id)).await?;
    Ok(raw_schema(schema))
}

fn raw_schema(schema: String) -> Response {
    let mut response = schema.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

async fn subjects_of_id(
    State(r): State<Shared>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let id = schema_id(&id)?;
    let deleted = flag(&params, "deleted");
    let pairs = run(&r, move |r| r.versions_of_id(id, deleted)).await?;
    let mut subjects: Vec<String> = pairs.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    ok(json!(subjects))
}

async fn versions_of_id(
    State(r): State<Shared>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let id = schema_id(&id)?;
    let deleted = flag(&params, "deleted");
    let pairs = run(&r, move |r| r.versions_of_id(id, deleted)).await?;
    let list: Vec<Value> = pairs
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    ok(json!(list))
}

async fn list_subjects(State(r): State<Shared>, Query(params): Params) -> ApiResult {
    let deleted = flag(&params, "deleted");
    let prefix = params.get("subjectPrefix").cloned().unwrap_or_default();
    let subjects = run(&r, move |r| Ok(r.subjects(deleted, &prefix))).await?;
    ok(json!(subjects))
}

async fn register(State(r): State<Shared>, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let req = schema_request(&body)?;
    let id = run(&r, move |r| {
        r.register(&subject, &req.schema, req.schema_type.as_deref())
    })
    .await?;
    ok(json!({ "id": id }))
}

async fn lookup(
    State(r): State<Shared>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let req = schema_request(&body)?;
    let deleted = flag(&params, "deleted");
    let info = run(&r, move |r| {
        r.lookup(&subject, &req.schema, req.schema_type.as_deref(), deleted)
    })
    .await?;
    ok(version_json(&info))
}

async fn delete_subject(
    State(r): State<Shared>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let permanent = flag(&params, "permanent");
    let versions = run(&r, move |r| r.delete_subject(&subject, permanent)).await?;
    ok(json!(versions))
}

async fn list_versions(
    State(r): State<Shared>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let deleted = flag(&params, "deleted");
    let versions = run(&r, move |r| r.versions(&subject, deleted)).await?;
    ok(json!(versions))
}

async fn get_version(
    State(r): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let deleted = flag(&params, "deleted");
    let info = run(&r, move |r| r.version(&subject, spec, deleted)).await?;
    ok(version_json(&info))
}

async fn get_version_schema(
    State(r): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let deleted = flag(&params, "deleted");
    let info = run(&r, move |r| r.version(&subject, spec, deleted)).await?;
    Ok(raw_schema(info.schema))
}

/// References are not supported, so nothing refers to any version; the version must exist.
async fn referenced_by(
    State(r): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    run(&r, move |r| r.version(&subject, spec, false)).await?;
    ok(json!([]))
}

async fn delete_version(
    State(r): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let permanent = flag(&params, "permanent");
    let version = run(&r, move |r| r.delete_version(&subject, spec, permanent)).await?;
    ok(json!(version))
}

/// Reads the level from a config PUT body: `compatibility`, or `compatibilityLevel` as
/// some clients send.
fn level_from_body(body: &Bytes) -> Result<crate::compat::CompatibilityLevel, RegistryError> {
    let value = json_body(body)?;
    let level = value
        .get("compatibility")
        .or_else(|| value.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .ok_or_else(|| RegistryError::InvalidCompatibilityLevel(String::new()))?;
    level.parse()
}

async fn get_global_config(State(r): State<Shared>) -> ApiResult {
    let level = run(&r, |r| r.compatibility(None, true)).await?;
    ok(json!({ "compatibilityLevel": level.as_str() }))
}

async fn put_global_config(State(r): State<Shared>, body: Bytes) -> ApiResult {
    let level = level_from_body(&body)?;
    run(&r, move |r| r.set_compatibility(None, level)).await?;
    ok(json!({ "compatibility": level.as_str() }))
}

async fn delete_global_config(State(r): State<Shared>) -> ApiResult {
    let old = run(&r, |r| r.delete_compatibility(None)).await?;
    ok(json!({ "compatibilityLevel": old.as_str() }))
}

async fn get_subject_config(
    State(r): State<Shared>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let default_to_global = flag(&params, "defaultToGlobal");
    let level = run(&r, move |r| {
        r.compatibility(Some(&subject), default_to_global)
    })
    .await?;
    ok(json!({ "compatibilityLevel": level.as_str() }))
}

async fn put_subject_config(
    State(r): State<Shared>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = level_from_body(&body)?;
    run(&r, move |r| r.set_compatibility(Some(&subject), level)).await?;
    ok(json!({ "compatibility": level.as_str() }))
}

async fn delete_subject_config(State(r): State<Shared>, Path(subject): Path<String>) -> ApiResult {
    let old = run(&r, move |r| r.delete_compatibility(Some(&subject))).await?;
    ok(json!({ "compatibilityLevel": old.as_str() }))
}

async fn test_compatibility_all(
    State(r): State<Shared>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    compatibility_response(r, subject, None, &params, &body).await
}

async fn test_compatibility_version(
    State(r): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    compatibility_response(r, subject, Some(spec), &params, &body).await
}

async fn compatibility_response(
    r: Shared,
    subject: String,
    spec: Option<VersionSpec>,
    params: &HashMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let req = schema_request(body)?;
    let messages = run(&r, move |r| {
        r.test_compatibility(&subject, spec, &req.schema, req.schema_type.as_deref())
    })
    .await?;
    let mut response = json!({ "is_compatible": messages.is_empty() });
    if flag(params, "verbose") {
        response["messages"] = json!(messages);
    }
    ok(response)
}
