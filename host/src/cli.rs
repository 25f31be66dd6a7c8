//! Command-line interface.

use crate::policy::ErrorPolicy;
use crate::settings::Connection;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Runs a stage plugin against Kafka, with Avro through a Schema Registry.
#[derive(Debug, Parser)]
#[command(name = "stage-host", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A subcommand; without one, runs the stage given by `--plugin`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run options (used when no subcommand is given).
    #[command(flatten)]
    pub run: RunArgs,

    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "STAGE_HOST_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage topics through the Kafka Admin API or a REST Proxy (the Python `ClusterAdmin`).
    Topic {
        /// What to do.
        #[command(subcommand)]
        command: crate::admin::topic::TopicCommand,
    },
    /// Manage schemas in the Schema Registry (subject `<topic>-value` by default).
    Schema {
        /// What to do.
        #[command(subcommand)]
        command: crate::admin::schema::SchemaCommand,
    },
    /// Run a plugin's transform on records from a JSON file and print the outputs as JSON
    /// lines, without a cluster.
    Harness(crate::harness::HarnessArgs),
    /// Create a plugin crate (a stage, or a source with `--source`) that builds as created.
    New(crate::scaffold::NewArgs),
    /// Print a plugin's metadata without connecting to anything.
    Inspect {
        /// The plugin library.
        plugin: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The stage config (JSON) to describe the stage with: a bridge's spec (the Python
        /// stage's topics, group and schema) comes from the script its config names.
        #[arg(long)]
        config_json: Option<String>,
    },
    /// Run a pipeline of stages, one supervised process per stage replica, and control it.
    Pipeline {
        /// What to do with the pipeline.
        #[command(subcommand)]
        command: crate::pipeline::PipelineCommand,
    },
}

/// Running one stage.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plugin library (`lib<name>.so`) to run.
    #[arg(long, env = "STAGE_HOST_PLUGIN")]
    pub plugin: Option<PathBuf>,

    /// Stage configuration file (TOML or JSON) passed to the plugin's constructor.
    #[arg(long, conflicts_with = "config_json")]
    pub config: Option<PathBuf>,

    /// Stage configuration as inline JSON.
    #[arg(long)]
    pub config_json: Option<String>,

    /// Override the stage's input topic.
    #[arg(long)]
    pub input_topic: Option<String>,

    /// Override the stage's consumer group.
    #[arg(long)]
    pub group_id: Option<String>,

    /// Override the stage's output topic.
    #[arg(long)]
    pub output_topic: Option<String>,

    /// Replicas of each partition of the topics the stage creates (its output, dead-letter
    /// and checkpoint topics), instead of the replication factor the plugin declares. A
    /// topic that already exists keeps its own. With `acks=all` (the default) a topic needs at
    /// least `min.insync.replicas` replicas; the stage refuses to start on one with fewer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i16).range(1..))]
    pub replication_factor: Option<i16>,

    /// What to do with a record that fails.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_error: ErrorPolicy,

    /// Dead-letter topic (default `<output topic>.dlq`).
    #[arg(long)]
    pub dead_letter_topic: Option<String>,

    /// Most records per plugin call.
    #[arg(long, default_value_t = crate::runner::stage::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,

    /// Longest wait, in milliseconds, to fill a batch after its first record. Under load the
    /// prefetch queue fills batches at once; the wait only matters when records trickle in,
    /// where it adds to every record's latency.
    #[arg(long, default_value_t = crate::runner::stage::DEFAULT_BATCH_WAIT_MS)]
    pub batch_wait_ms: u64,

    /// How long to wait for the input topic to exist at start-up.
    #[arg(long, default_value = "60", value_name = "SECONDS")]
    pub input_topic_timeout_secs: u64,

    /// How long the final flush may take on stop.
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    pub flush_timeout_secs: u64,

    /// Load, construct and check schema compatibility with the registry, then exit without
    /// consuming or producing (prints one JSON line).
    #[arg(long)]
    pub dry_run: bool,

    /// Write status lines (JSON) for a supervisor to this inherited file descriptor.
    #[arg(long, hide = true, env = "STAGE_HOST_STATUS_FD")]
    pub status_fd: Option<i32>,

    /// Refuse the plugin unless its sha256 is this (hex).
    #[arg(long, value_name = "HEX")]
    pub plugin_sha256: Option<String>,

    /// Give up on a plugin call that has not returned after this long (a hung transform):
    /// the process exits without committing the batch, so its records are read again.
    #[arg(long, default_value = "60", value_name = "SECONDS")]
    pub batch_timeout_secs: u64,

    /// Circuit breaker: stop the stage when more than this share of the last
    /// `--failure-window` records failed, rather than skip or dead-letter a whole topic.
    #[arg(long, default_value = "0.5", value_name = "RATIO")]
    pub max_failure_ratio: f64,

    /// The number of recent records the circuit breaker looks at.
    #[arg(long, default_value = "200", value_name = "RECORDS")]
    pub failure_window: usize,

    /// Exactly-once: consume-transform-produce in Kafka transactions, with the input offsets
    /// committed inside each transaction.
    #[arg(long)]
    pub exactly_once: bool,

    /// Exactly-once: how long, in milliseconds, a transaction gathers batches before it
    /// commits. A commit costs about the same whatever the transaction holds, so longer
    /// transactions carry more records per second; outputs become visible to
    /// `read_committed` readers only at the commit, so they add to the latency. 0 commits
    /// every batch on its own.
    #[arg(long, default_value_t = crate::runner::stage::DEFAULT_TRANSACTION_MS, value_name = "MS")]
    pub transaction_ms: u64,

    /// Warn when no partition has been assigned for this long after subscribing, naming the
    /// group's state and members; repeated at this interval. 0 turns the warning off.
    #[arg(long, default_value_t = crate::runner::liveness::DEFAULT_NO_ASSIGNMENT_WARN_SECS, value_name = "SECONDS")]
    pub no_assignment_warn_secs: u64,

    /// A consumer holding partitions with records to fetch that consumes nothing for this long
    /// rejoins its group; if it stalls again, the stage stops (exit 1). 0 turns this off.
    #[arg(long, default_value_t = crate::runner::liveness::DEFAULT_STALL_TIMEOUT_SECS, value_name = "SECONDS")]
    pub stall_timeout_secs: u64,

    /// What a jump in the input's offsets does: `warn` counts it and logs the range with its
    /// likely reason (transaction markers only at debug level); `fail` stops the stage before
    /// it commits past any gap, for an input known to be neither transactional nor compacted.
    #[arg(long, value_enum, default_value = "warn")]
    pub on_offset_gap: crate::policy::OffsetGapPolicy,

    /// Stamp every output with the input record it came from, in `stage.source.topic`,
    /// `stage.source.partition` and `stage.source.offset` headers (a pipeline turns this on
    /// for its stages, so a canary can pair outputs with inputs).
    #[arg(long)]
    pub position_headers: bool,

    /// The compacted topic where sources that keep checkpoints store them (created if
    /// missing), so a restarted source resumes where its records in Kafka end.
    #[arg(long, default_value = crate::runner::checkpoint::DEFAULT_CHECKPOINT_TOPIC, value_name = "TOPIC")]
    pub checkpoint_topic: String,

    /// The transactional id for `--exactly-once`; give each replica its own, stable across
    /// restarts, so a restarted or swapped-in process fences its predecessor (default
    /// `<group or output topic>.<stage name>`).
    #[arg(long, env = "STAGE_HOST_TRANSACTIONAL_ID")]
    pub transactional_id: Option<String>,

    /// Serve Prometheus metrics (`/metrics`) and health checks (`/health/live`,
    /// `/health/ready`) over HTTP on this address; port 0 picks a free port (logged at start).
    #[arg(long, env = "STAGE_HOST_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,

    /// Cluster connection.
    #[command(flatten)]
    pub connection: Connection,
}
