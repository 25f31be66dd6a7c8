//! Starts the registry in-process on an ephemeral port and talks to it over real HTTP.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The project's example schemas, registered exactly as the Python producers do.
pub const STAGE_ONE: &str = include_str!("../../../../schemas/stage_one.json");
pub const STAGE_TWO: &str = include_str!("../../../../schemas/stage_two.json");
pub const STAGE_THREE: &str = include_str!("../../../../schemas/stage_three.json");
pub const TEST_TOPIC: &str = include_str!("../../../../schemas/test_topic.json");

/// A running registry.
pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), schema_registry::ServeError>>>,
}

impl Server {
    /// Starts a registry over `dir`.
    pub async fn start(dir: &Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(schema_registry::serve_until(
            listener,
            dir.to_path_buf(),
            async move {
                let _ = rx.await;
            },
        ));
        let server = Self {
            base,
            dir: dir.to_path_buf(),
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        };
        // The listener is bound already; wait until the store is open and routes answer.
        for _ in 0..100 {
            if server.client.get(server.url("/")).send().await.is_ok() {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("registry did not start");
    }

    /// Stops the registry gracefully and waits for it to exit.
    pub async fn stop(mut self) {
        drop(self.client);
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional JSON body (Confluent's content type) and returns the
    /// status and the parsed JSON response, checking the response content type on the way.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call_raw(method, path, body, "application/vnd.schemaregistry.v1+json")
            .await
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, body, content_type).await;
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: response is not JSON ({e}): {text}"));
        (status, value)
    }

    pub async fn call_text(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some(body) = body {
            req = req.header("Content-Type", content_type).body(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert_eq!(
            ct, "application/vnd.schemaregistry.v1+json",
            "{method} {path}: content type"
        );
        (status, resp.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PUT", path, Some(body)).await
    }

    /// Registers `schema` under `subject`, returning the status and body.
    pub async fn register(&self, subject: &str, schema: &str) -> (u16, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            serde_json::json!({ "schema": schema }),
        )
        .await
    }

    /// Registers and expects success, returning the id.
    pub async fn register_ok(&self, subject: &str, schema: &str) -> u64 {
        let (status, body) = self.register(subject, schema).await;
        assert_eq!(status, 200, "register {subject}: {body}");
        body["id"].as_u64().unwrap()
    }

    pub async fn set_level(&self, subject: &str, level: &str) {
        let (status, body) = self
            .put(
                &format!("/config/{subject}"),
                serde_json::json!({ "compatibility": level }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Asserts a Confluent error response.
#[track_caller]
pub fn assert_error(response: &(u16, Value), status: u16, code: u64) {
    assert_eq!(response.0, status, "status of {}", response.1);
    assert_eq!(
        response.1["error_code"].as_u64(),
        Some(code),
        "error_code of {}",
        response.1
    );
    assert!(
        response.1["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message of {}",
        response.1
    );
}

/// A record schema named `r` with the given fields (JSON text of the field list).
pub fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"r","fields":[{fields}]}}"#)
}
