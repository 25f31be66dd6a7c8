//! A Confluent-compatible Avro Schema Registry for the project's local cluster.
//!
//! Confluent's registry cannot be installed on the development and CI machines (no JVM
//! distribution, no Docker), so the local cluster runs this one next to the broker. Real
//! deployments keep using Confluent's (or a compatible) registry, so this crate matches
//! Confluent's REST paths, response shapes, error codes and compatibility rules closely enough
//! for the clients the project uses: Python `confluent-kafka`'s `SchemaRegistryClient`,
//! `AvroSerializer` and `AvroDeserializer`, and the `schema_registry_converter` crate.
//!
//! Only Avro schemas without references are supported. State lives in one JSON file in the
//! data directory and survives restarts.
//!
//! ```no_run
//! # async fn run() -> Result<(), schema_registry::ServeError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! schema_registry::serve(listener, "/tmp/registry".into()).await
//! # }
//! ```

pub mod api;
pub mod auth;
pub mod compat;
pub mod error;
pub mod registry;
pub mod schema;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub use api::router;
pub use auth::BasicAuth;
pub use compat::CompatibilityLevel;
pub use error::RegistryError;
pub use registry::Registry;
pub use store::StoreError;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be opened.
    #[error("cannot open the registry data directory")]
    Store(#[from] StoreError),
    /// The listener failed.
    #[error("server I/O error")]
    Io(#[from] std::io::Error),
}

/// Serves the registry stored in `data_dir` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, data_dir: PathBuf) -> Result<(), ServeError> {
    serve_until(listener, data_dir, std::future::pending()).await
}

/// Serves the registry stored in `data_dir` on `listener` until `shutdown` completes, then
/// finishes in-flight requests and returns.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    data_dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_auth_until(listener, data_dir, None, shutdown).await
}

/// [`serve_until`], requiring `auth` on every request when it is given.
pub async fn serve_with_auth_until(
    listener: tokio::net::TcpListener,
    data_dir: PathBuf,
    auth: Option<BasicAuth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let dir = data_dir.clone();
    let registry = tokio::task::spawn_blocking(move || Registry::open(&dir))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %data_dir.display(), basic_auth = auth.is_some(), "schema registry listening");
    let mut app = router(Arc::new(registry));
    if let Some(auth) = auth {
        app = app.layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require,
        ));
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
