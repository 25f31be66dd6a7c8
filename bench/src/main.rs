//! `stage-bench`: measures a stage against the ceiling, against the Python library and against
//! the same transform on Kafka Streams, side by side, on one local cluster and the same
//! preloaded data.
//!
//! The binary is also its own child process for the two scenarios that are not the
//! `stage-host` binary (the raw passthrough and the statically linked stage), so that every
//! scenario is measured the same way: as a separate process whose CPU time and peak RSS are
//! read from `/proc`.

mod callgrind;
mod cli;
mod cluster;
mod commands;
mod group;
mod latency;
mod linked;
mod passthrough;
mod perf_test;
mod preload;
mod process;
mod replicas;
mod report;
mod run;
mod scenario;
mod svg;

use clap::Parser;
use cli::{Cli, Role};
use stage_host::Shutdown;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    // The passthrough and linked roles run with the same allocator settings as stage-host.
    stage_host::cap_malloc_arenas();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,apache_avro=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.role {
        None => run::run(&cli.bench),
        Some(Role::Passthrough(args)) => {
            passthrough::run(&cli.bench.connection, &args, &Shutdown::on_signals()?)
        }
        Some(Role::LinkedStage(args)) => {
            linked::run(&cli.bench.connection, &args, &Shutdown::on_signals()?)
        }
    }
}
