//! `schema-registry`: runs the local Confluent-compatible Schema Registry.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Confluent-compatible Avro Schema Registry for local development and CI.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "SCHEMA_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Directory holding the registry's state; created if missing.
    #[arg(long, env = "SCHEMA_REGISTRY_DATA_DIR")]
    data_dir: PathBuf,
    /// Require HTTP basic authentication with these credentials, `user:password`.
    #[arg(long, env = "SCHEMA_REGISTRY_BASIC_AUTH", hide_env_values = true, value_parser = parse_basic_auth)]
    basic_auth: Option<schema_registry::BasicAuth>,
}

fn parse_basic_auth(value: &str) -> Result<schema_registry::BasicAuth, String> {
    schema_registry::BasicAuth::parse(value).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // apache-avro warns on every parse of a single-branch union, which the project's schemas
    // use on purpose; keep its warnings out of the default log.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,apache_avro=error")),
        )
        .init();
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    schema_registry::serve_with_auth_until(
        listener,
        cli.data_dir,
        cli.basic_auth,
        shutdown_signal(),
    )
    .await
    .context("schema registry failed")?;
    tracing::info!("schema registry stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM so the supervisor and CI can stop the registry cleanly.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
