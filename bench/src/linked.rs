//! The stage-two transform linked into the host: the same start-up and the same runner as
//! `stage-host --plugin libstage_two.so` ([`stage_host::run_stage`], with stage-host's
//! own defaults from its argument parser), with the stage constructed by
//! [`plugin_api::linked::stage`] instead of loaded from the library. The difference between
//! this and the plugin run is the cost of the plugin boundary.

use crate::cli::ChildArgs;
use anyhow::Result;
use clap::Parser;
use plugin_api::Stage;
use stage_host::commands::Cli;
use stage_host::Connection;
use stage_host::Observer;
use stage_host::Shutdown;
use stage_two::StageTwo;
use std::sync::Arc;

/// Runs the linked stage until SIGTERM.
pub fn run(conn: &Connection, args: &ChildArgs, shutdown: &Shutdown) -> Result<()> {
    let mut run_args = Cli::try_parse_from([
        "stage-host",
        "--input-topic",
        &args.input_topic,
        "--output-topic",
        &args.output_topic,
        "--group-id",
        &args.group_id,
        "--batch-size",
        &args.batch_size.to_string(),
        "--batch-wait-ms",
        &args.batch_wait_ms.to_string(),
    ])?
    .run;
    run_args.connection = conn.clone();
    let mut spec = StageTwo::spec();
    spec.output_topic.name = args.output_topic.clone();
    let instance = plugin_api::linked::stage::<StageTwo>(&serde_json::json!({}))
        .map_err(|e| anyhow::anyhow!("constructing stage-two: {e}"))?;
    // The same observer a plugin run has, so both runs count the same way.
    let observer = Arc::new(Observer::new(spec.kind, &spec.name, &spec.version));
    let stats = stage_host::run_stage(&run_args, &spec, instance, shutdown, observer)?;
    tracing::info!(records = stats.records_in, "linked stage stopped");
    Ok(())
}
