//! The Schema Registry client: every call the host, its `schema` commands, the dry run, the
//! client library and the benchmark make, over the registry's REST API.
//!
//! Subjects and versions are escaped in URLs; basic auth and a private CA are settings; a call
//! that may heal (no answer, a server error) is retried a few times with backoff when retrying
//! cannot change what it does (not deletions); ids of registered schemas and schemas looked up
//! by id are cached for the life of the client, since the registry never changes either.

use crate::http::{self, ErrorAnswer};
use crate::Failure;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        self.failure() == Failure::Unreachable
    }

    /// The kind of failure.
    pub fn failure(&self) -> Failure {
        match self {
            RegistryError::Unreachable { .. } => Failure::Unreachable,
            RegistryError::Refused(_) => Failure::Refused,
        }
    }
}

/// Where the registry is and how to talk to it.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Base URL, e.g. `http://127.0.0.1:8081`.
    pub url: String,
    /// Basic auth, `user:password`.
    pub basic_auth: Option<String>,
    /// A PEM CA certificate to trust besides the system's (an `https` registry with a private
    /// CA).
    pub ca_file: Option<PathBuf>,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// How many times a call that may heal is tried again.
    pub retries: u32,
}

impl RegistrySettings {
    /// The registry at `url`, no auth, 10 s per answer, two retries.
    pub fn new(url: impl Into<String>) -> Self {
        RegistrySettings {
            url: url.into(),
            basic_auth: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
            retries: 2,
        }
    }

    /// With basic auth `user:password` (or none).
    pub fn basic_auth(mut self, auth: Option<&str>) -> Self {
        self.basic_auth = auth.map(str::to_string);
        self
    }

    /// With the longest wait for one answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusting the PEM CA certificate in `ca_file` too.
    pub fn ca_file(mut self, ca_file: Option<PathBuf>) -> Self {
        self.ca_file = ca_file;
        self
    }

    /// Retrying a call that may heal `retries` times (0: never).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

/// What the registry says of a schema against a subject's latest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The latest version can be read with it, and it with the latest (the subject's
    /// compatibility level decides which).
    Compatible,
    /// The subject has no version yet: any schema is accepted.
    NewSubject,
    /// Not compatible, with the registry's reasons.
    Incompatible(Vec<String>),
}

/// A Schema Registry client. Cheap to share: calls take `&self`.
pub struct SchemaRegistry {
    base: String,
    auth: Option<(String, String)>,
    retries: u32,
    http: Client,
    registered: Mutex<HashMap<(String, String), u32>>,
    by_id: Mutex<HashMap<u32, Arc<str>>>,
}

/// The registry's answer to a soft delete of a subject whose versions are all soft-deleted.
const SUBJECT_SOFT_DELETED: i64 = 40404;
/// The registry's answer to a soft delete of a version that is soft-deleted.
const VERSION_SOFT_DELETED: i64 = 40406;

/// First wait before a retry; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

impl SchemaRegistry {
    /// A client with `settings`. Fails only on settings that cannot work (an unreadable CA).
    pub fn new(settings: &RegistrySettings) -> Result<Self, RegistryError> {
        let http = http::client(settings.timeout, settings.ca_file.as_deref())
            .map_err(RegistryError::Refused)?;
        let auth = settings.basic_auth.as_deref().map(|auth| {
            let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
            (user.to_string(), password.to_string())
        });
        Ok(SchemaRegistry {
            base: settings.url.trim_end_matches('/').to_string(),
            auth,
            retries: settings.retries,
            http,
            registered: Mutex::default(),
            by_id: Mutex::default(),
        })
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Registers `schema` (Avro JSON) under `subject` and returns its id. The same schema gets
    /// the same id again (asked once per client); an incompatible one is refused with the
    /// registry's reasons.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), schema.to_string());
        if let Some(id) = lock(&self.registered).get(&key) {
            return Ok(*id);
        }
        let what = format!("registering the schema of {subject}");
        let body = self.call(&what, true, || {
            self.http
                .post(self.url_of(&["subjects", subject, "versions"]))
                .json(&json!({ "schema": schema }))
        })?;
        let id = id_in(&body).ok_or_else(|| {
            RegistryError::Refused(format!(
                "{what}: the registry answered without an id: {body}"
            ))
        })?;
        lock(&self.registered).insert(key, id);
        Ok(id)
    }

    /// The schema (Avro JSON) registered with `id`, asked once per client.
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        if let Some(schema) = lock(&self.by_id).get(&id) {
            return Ok(Arc::clone(schema));
        }
        let what = format!("looking up schema id {id}");
        let body = self.call(&what, true, || {
            self.http
                .get(self.url_of(&["schemas", "ids", &id.to_string()]))
        })?;
        let schema: Arc<str> = body["schema"]
            .as_str()
            .ok_or_else(|| {
                RegistryError::Refused(format!(
                    "{what}: the registry answered without a schema: {body}"
                ))
            })?
            .into();
        lock(&self.by_id).insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    /// A subject's version (a number or `latest`): its subject, version, id and schema, as
    /// the registry answers them.
    pub fn version(&self, subject: &str, version: &str) -> Result<Value, RegistryError> {
        self.call(
            &format!("reading {subject} version {version}"),
            true,
            || {
                self.http
                    .get(self.url_of(&["subjects", subject, "versions", version]))
            },
        )
    }

    /// Every subject.
    pub fn subjects(&self) -> Result<Value, RegistryError> {
        self.call("listing subjects", true, || {
            self.http.get(self.url_of(&["subjects"]))
        })
    }

    /// A subject's version numbers.
    pub fn versions(&self, subject: &str) -> Result<Value, RegistryError> {
        self.call(&format!("listing the versions of {subject}"), true, || {
            self.http
                .get(self.url_of(&["subjects", subject, "versions"]))
        })
    }

    /// Deletes a subject (every version) or one version; `permanent` hard-deletes after the
    /// soft delete, so they cannot be restored. Returns what the registry says it deleted (with
    /// `permanent`, what it removed for good). Never retried: a delete whose answer was lost
    /// would be refused the second time.
    ///
    /// The registry hard-deletes only what is soft-deleted already (`?permanent=true` on a live
    /// subject is 40405, on a live version 40407), and refuses a second soft delete (40404,
    /// 40406). So a permanent delete soft-deletes first, and goes on to the hard delete when
    /// the registry says that was done before.
    pub fn delete(
        &self,
        subject: &str,
        version: Option<&str>,
        permanent: bool,
    ) -> Result<Value, RegistryError> {
        let url = match version {
            Some(v) => self.url_of(&["subjects", subject, "versions", v]),
            None => self.url_of(&["subjects", subject]),
        };
        let what = match version {
            Some(v) => format!("deleting {subject} version {v}"),
            None => format!("deleting {subject}"),
        };
        let soft = self.send(&what, false, || self.http.delete(&url))?;
        let deleted = if !permanent {
            self.body(soft, &what)?
        } else {
            if soft.status() == StatusCode::NOT_FOUND {
                let answer = ErrorAnswer::read(soft);
                if !matches!(
                    answer.code,
                    Some(SUBJECT_SOFT_DELETED | VERSION_SOFT_DELETED)
                ) {
                    return Err(RegistryError::Refused(format!("{what}: {answer}")));
                }
            }
            self.call(&what, false, || {
                self.http.delete(format!("{url}?permanent=true"))
            })?
        };
        lock(&self.registered).retain(|(s, _), _| s != subject);
        Ok(deleted)
    }

    /// Whether `schema` is compatible with `subject`'s latest version, without registering it.
    pub fn check(&self, subject: &str, schema: &str) -> Result<Verdict, RegistryError> {
        let what = format!("checking compatibility with {subject}");
        let url = format!(
            "{}?verbose=true",
            self.url_of(&["compatibility", "subjects", subject, "versions", "latest"])
        );
        let response = self.send(&what, true, || {
            self.http.post(&url).json(&json!({ "schema": schema }))
        })?;
        if response.status() == StatusCode::NOT_FOUND {
            // 40401 subject not found, 40402 version not found: nothing to be compatible with.
            return Ok(Verdict::NewSubject);
        }
        let body = self.body(response, &what)?;
        if body["is_compatible"].as_bool() == Some(true) {
            return Ok(Verdict::Compatible);
        }
        let reasons = body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
            })
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| vec!["the registry gave no reason".into()]);
        Ok(Verdict::Incompatible(reasons))
    }

    fn url_of(&self, segments: &[&str]) -> String {
        let mut url = self.base.clone();
        for s in segments {
            url.push('/');
            url.push_str(&http::segment(s));
        }
        url
    }

    /// Sends the request `make` builds and returns the JSON of a successful answer.
    fn call(
        &self,
        what: &str,
        retry: bool,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Value, RegistryError> {
        let response = self.send(what, retry, make)?;
        self.body(response, what)
    }

    /// Sends, retrying (when `retry`) a call that got no answer or a server error.
    fn send(
        &self,
        what: &str,
        retry: bool,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let attempts = if retry { self.retries + 1 } else { 1 };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(what, make());
            match outcome {
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::debug!(error = %e, attempt, "registry call failed; retrying");
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn send_once(&self, what: &str, request: RequestBuilder) -> Result<Response, RegistryError> {
        let request = match &self.auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        };
        let response = request.send().map_err(|e| RegistryError::Unreachable {
            url: self.base.clone(),
            message: http::no_answer(&e),
        })?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        let answer = ErrorAnswer::read(response);
        Err(match answer.failure() {
            Failure::Unreachable => RegistryError::Unreachable {
                url: self.base.clone(),
                message: format!("{what}: answered {answer}"),
            },
            Failure::Refused => RegistryError::Refused(format!("{what}: {answer}")),
        })
    }

    /// The JSON of an answer `send_once` let through; a 404 is a refusal naming what is missing.
    fn body(&self, response: Response, what: &str) -> Result<Value, RegistryError> {
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::Refused(format!(
                "{what}: {}",
                ErrorAnswer::read(response)
            )));
        }
        response.json().map_err(|e| RegistryError::Unreachable {
            url: self.base.clone(),
            message: format!("{what}: the answer is not JSON: {e}"),
        })
    }
}

fn id_in(body: &Value) -> Option<u32> {
    body["id"].as_u64().and_then(|id| u32::try_from(id).ok())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a cache lock leaves a map that is still whole.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
