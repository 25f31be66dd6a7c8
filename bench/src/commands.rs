//! The command line of each scenario's process. Children find the cluster through stage-host's
//! environment variables, which every one of them reads.

use crate::cli::BenchArgs;
use crate::scenario::Scenario;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a process reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Topics<'a> {
    /// Input topic.
    pub input: &'a str,
    /// Output topic.
    pub output: &'a str,
    /// Consumer group (Kafka Streams: its application id).
    pub group: &'a str,
}

impl Topics<'_> {
    fn args(&self) -> [&str; 6] {
        [
            "--input-topic",
            self.input,
            "--output-topic",
            self.output,
            "--group-id",
            self.group,
        ]
    }
}

/// The process for `scenario`.
pub fn command_for(args: &BenchArgs, scenario: Scenario, topics: Topics<'_>) -> Result<Command> {
    let command = match scenario {
        Scenario::Ceiling | Scenario::Linked => {
            let mut c = Command::new(std::env::current_exe()?);
            c.arg(if scenario == Scenario::Ceiling {
                "passthrough"
            } else {
                "linked-stage"
            });
            c.args(topics.args());
            c
        }
        Scenario::Plugin => stage_host(args, topics),
        Scenario::PluginEos => {
            // Its own transactional id, unique to the run like the group.
            let mut c = stage_host(args, topics);
            c.arg("--exactly-once")
                .args(["--transactional-id", &format!("{}.tx", topics.group)]);
            c
        }
        Scenario::PythonStage => {
            // The library's own StageTwo, in its example pipeline script (its schemas lie
            // beside it), read where the library's files lie.
            let config = serde_json::json!({
                "script": args.seed.join("examples/mpp_pipeline/mpp_pipeline.py"),
                "class": "StageTwo",
            });
            let mut c = Command::new(&args.stage_host);
            c.arg("--plugin")
                .arg(&args.python_plugin)
                .args(["--config-json", &config.to_string()])
                .args(topics.args())
                .args(&args.stage_host_arg);
            c
        }
        Scenario::KafkaStreams => kafka_streams(args, topics, false, args.kstreams_threads),
        Scenario::KafkaStreamsEos => kafka_streams(args, topics, true, args.kstreams_threads),
        Scenario::PythonPerRecord | Scenario::PythonBatched => {
            let mut c = Command::new(expand_home(&args.python));
            c.arg(&args.python_script).args(topics.args()).args([
                "--mode",
                if scenario == Scenario::PythonPerRecord {
                    "flush-per-record"
                } else {
                    "batched"
                },
                "--output-schema",
                "schemas/stage_two.json",
            ]);
            c
        }
    };
    Ok(with_cluster_env(args, command))
}

/// `stage-host --plugin libstage_two.so`, at-least-once.
pub fn stage_host(args: &BenchArgs, topics: Topics<'_>) -> Command {
    let mut c = Command::new(&args.stage_host);
    c.arg("--plugin")
        .arg(&args.plugin)
        .args(topics.args())
        .args(&args.stage_host_arg);
    with_cluster_env(args, c)
}

/// The Kafka Streams peer with `threads` stream threads. The child is the JVM itself, so
/// /proc measures Streams, not a launcher. Its consumer group is its application.id, which
/// `--group-id` sets.
pub fn kafka_streams(
    args: &BenchArgs,
    topics: Topics<'_>,
    exactly_once: bool,
    threads: u32,
) -> Command {
    let mut c = Command::new(&args.java);
    c.args(args.kstreams_jvm_options.split_whitespace())
        .arg("-jar")
        .arg(&args.kstreams_jar)
        .args(topics.args())
        .args([
            "--mode",
            if exactly_once {
                "exactly_once_v2"
            } else {
                "at_least_once"
            },
            "--threads",
            &threads.to_string(),
        ]);
    with_cluster_env(args, c)
}

fn with_cluster_env(args: &BenchArgs, mut command: Command) -> Command {
    let conn = &args.connection;
    command
        .env("STAGE_HOST_BOOTSTRAP_SERVERS", &conn.bootstrap_servers)
        .env("STAGE_HOST_SCHEMA_REGISTRY_URL", &conn.schema_registry_url)
        .env_remove("STAGE_HOST_PLUGIN")
        .env_remove("STAGE_HOST_TRANSACTIONAL_ID")
        .env("RUST_LOG", "info");
    command
}

/// `~/x` as `$HOME/x`.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}
