//! The stage-two transform linked into the host's runner: the same start-up and the same
//! [`StageRunner`] as `stage-host --plugin libstage_two.so`, with the stage constructed by
//! [`plugin_api::linked::stage`] instead of loaded from the library. The difference between this
//! and the plugin run is the cost of the plugin boundary.

use crate::cli::ChildArgs;
use anyhow::Result;
use clap::Parser;
use plugin_api::Stage;
use stage_host::cli::Cli;
use stage_host::observe::Observer;
use stage_host::runner::stage::{StageOptions, StageRunner};
use stage_host::runner::OutputTopic;
use stage_host::settings::Connection;
use stage_host::shutdown::Shutdown;
use stage_host::topics;
use stage_two::StageTwo;
use std::sync::Arc;
use std::time::Duration;

/// Runs the linked stage until SIGTERM, with stage-host's defaults (taken from its own
/// argument parser, so they follow the host's), 8 batches in flight as the host runs.
pub fn run(conn: &Connection, args: &ChildArgs, shutdown: &Shutdown) -> Result<()> {
    let defaults = Cli::try_parse_from(["stage-host"])?.run;
    let mut spec = StageTwo::spec();
    spec.output_topic.name = args.output_topic.clone();
    let instance = plugin_api::linked::stage::<StageTwo>(&serde_json::json!({}))
        .map_err(|e| anyhow::anyhow!("constructing stage-two: {e}"))?;
    let registry = conn.registry()?;
    topics::ensure_topic(conn, &spec.output_topic, &Shutdown::default())?;
    let value_schema_id = registry.register(
        &format!("{}-value", spec.output_topic.name),
        &spec.output_value_schema,
    )?;
    let output = OutputTopic {
        topic: spec.output_topic.name.clone(),
        value_schema_id,
        key_schema_id: None,
    };
    let options = StageOptions {
        stage_name: spec.name.clone(),
        plugin_version: spec.version.clone(),
        input_topic: args.input_topic.clone(),
        group_id: args.group_id.clone(),
        input_key_framed: spec.input_key_framed,
        batch_size: args.batch_size,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        policy: defaults.on_error,
        dead_letter_topic: None,
        max_in_flight_batches: stage_host::runner::stage::MAX_IN_FLIGHT_BATCHES,
        transaction_interval: Duration::from_millis(defaults.transaction_ms),
        flush_timeout: Duration::from_secs(defaults.flush_timeout_secs),
        batch_timeout: Duration::from_secs(defaults.batch_timeout_secs),
        failure_window: defaults.failure_window,
        max_failure_ratio: defaults.max_failure_ratio,
        transactional_id: None,
        liveness: Default::default(),
        on_offset_gap: Default::default(),
        input_compacted: false,
        position_headers: false,
    };
    // The same observer a plugin run has, so both runs count the same way.
    let observer = Arc::new(Observer::new(spec.kind, &spec.name, &spec.version));
    let runner = StageRunner::new(
        conn,
        options,
        output,
        &registry,
        instance,
        shutdown.clone(),
        observer,
    )?;
    let stats = runner.run()?;
    tracing::info!(records = stats.records_in, "linked stage stopped");
    Ok(())
}
