//! The HTTP endpoint of a stage process (`--metrics-addr`): `/metrics`, `/health/live` and
//! `/health/ready`, served by axum on a small single-threaded tokio runtime in a thread of its
//! own, so the stage loop stays a plain blocking loop and a slow scraper never delays a batch.
//!
//! The address is bound first, on the main thread, before anything else starts: an address in
//! use or one that does not resolve is a configuration error (exit code 2) with one line.

use super::Observer;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;

/// A bound, not yet served, metrics address.
#[derive(Debug)]
pub struct Bound(TcpListener);

/// Binds `addr` (`host:port`; port 0 picks a free one).
pub fn bind(addr: &str) -> Result<Bound, String> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("--metrics-addr {addr}: not an address (host:port): {e}"))?
        .collect();
    let listener = TcpListener::bind(&addrs[..])
        .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    Ok(Bound(listener))
}

/// Serves `observer` on `bound` from a background thread; returns the address served.
pub fn serve(bound: Bound, observer: Arc<Observer>) -> std::io::Result<SocketAddr> {
    let Bound(listener) = bound;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            let served = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, router(observer)).await
            });
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics endpoint stopped");
            }
        })?;
    tracing::info!(%addr, "serving /metrics, /health/live and /health/ready");
    Ok(addr)
}

fn router(observer: Arc<Observer>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(observer)
}

async fn metrics(State(observer): State<Arc<Observer>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        observer.metrics.encode(),
    )
}

async fn live(State(observer): State<Arc<Observer>>) -> impl IntoResponse {
    let state = observer.health.state();
    answer(state.is_live(), state)
}

async fn ready(State(observer): State<Arc<Observer>>) -> impl IntoResponse {
    let state = observer.health.state();
    answer(state.is_ready(), state)
}

fn answer(ok: bool, state: super::health::HealthState) -> impl IntoResponse {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(serde_json::json!({"ok": ok, "state": state})))
}
