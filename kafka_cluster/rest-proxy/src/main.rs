//! `kafka-rest-proxy`: serves the REST Proxy v3 cluster and topic endpoints for one Kafka
//! cluster.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use rest_proxy::{router, AppState, KafkaAdmin, KafkaAdminConfig};
use tracing_subscriber::EnvFilter;

/// Kafka REST Proxy v3 topic endpoints (Confluent-compatible) over the Kafka Admin API.
#[derive(Debug, Parser)]
#[command(name = "kafka-rest-proxy", version)]
struct Args {
    /// Address to serve HTTP on.
    #[arg(long, env = "KAFKA_REST_LISTEN", default_value = "127.0.0.1:8082")]
    listen: SocketAddr,

    /// Kafka bootstrap servers (`host:port,...`).
    #[arg(
        long,
        env = "KAFKA_REST_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap_servers: String,

    /// Cluster id to report when the broker does not report one.
    #[arg(
        long,
        env = "KAFKA_REST_CLUSTER_ID",
        default_value = "stage-host-local"
    )]
    cluster_id: String,

    /// Timeout of one request to the broker, in milliseconds.
    #[arg(long, env = "KAFKA_REST_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    request_timeout_ms: u64,

    /// Extra librdkafka property for the admin client, `KEY=VALUE` (repeatable), e.g. for
    /// `security.protocol` against a secured cluster.
    #[arg(long = "client-property", value_parser = parse_property)]
    client_properties: Vec<(String, String)>,
}

fn parse_property(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(key, value)| (key.trim().to_owned(), value.to_owned()))
        .filter(|(key, _)| !key.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got '{raw}'"))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let timeout = Duration::from_millis(args.request_timeout_ms);
    let config = KafkaAdminConfig {
        fallback_cluster_id: args.cluster_id,
        request_timeout: timeout,
        visibility_timeout: timeout,
        client_properties: args.client_properties,
        ..KafkaAdminConfig::new(&args.bootstrap_servers)
    };
    let admin = KafkaAdmin::new(config).context("cannot create the Kafka admin client")?;
    let app = router(AppState::new(admin, format!("http://{}", args.listen)));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (is the port in use?)", args.listen))?;
    tracing::info!(listen = %args.listen, bootstrap_servers = %args.bootstrap_servers, "kafka-rest-proxy serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    tracing::info!("kafka-rest-proxy stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM so in-flight requests finish before exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
