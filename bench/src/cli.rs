//! Command-line interface: the benchmark's options, and the hidden child roles the benchmark
//! starts itself in.

use clap::{Args, Parser, Subcommand};
use stage_host::Connection;
use std::path::PathBuf;

/// Benchmarks stage-two: raw passthrough (ceiling), stage-host with the plugin, the same
/// transform linked statically, the Python library's pattern, and the same transform on Kafka
/// Streams.
#[derive(Debug, Parser)]
#[command(name = "stage-bench", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A child role (used by the benchmark itself).
    #[command(subcommand)]
    pub role: Option<Role>,

    /// Benchmark options.
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// What the benchmark measures and where it writes.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Records preloaded into the input topic for the throughput runs.
    #[arg(long, default_value = "1000000")]
    pub records: u64,

    /// Records for each Python run (the Python library's pattern is too slow for the full set).
    #[arg(long, default_value = "5000")]
    pub python_sample: u64,

    /// Where the JSON, markdown and SVG results go.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,

    /// Skip the Python scenarios.
    #[arg(long)]
    pub skip_python: bool,

    /// Run only these scenarios (ids: ceiling, plugin, plugin-eos, linked, kstreams,
    /// kstreams-eos, python-per-record, python-batched); all of them when not given. For
    /// looking at one scenario while tuning it: the README's results come from a full run.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,

    /// An extra argument for stage-host in (b) and (b-eos), repeated for each one (e.g.
    /// `--stage-host-arg=--transaction-ms --stage-host-arg=500`).
    #[arg(long, allow_hyphen_values = true)]
    pub stage_host_arg: Vec<String>,

    /// Skip the Kafka Streams scenarios (they need Java 17 and the peer's jar).
    #[arg(long)]
    pub skip_kstreams: bool,

    /// Skip the replicas curve (stage two with 1, 2 and 4 processes, Kafka Streams with as
    /// many threads, on a 4-partition input of `--records` records).
    #[arg(long)]
    pub skip_replicas: bool,

    /// Replica processes (and Kafka Streams threads) of the replicas curve.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub replicas: Vec<u32>,

    /// Skip the broker's reference line (Kafka's kafka-producer-perf-test and
    /// kafka-consumer-perf-test).
    #[arg(long)]
    pub skip_broker_reference: bool,

    /// The launcher of Kafka's tools (its `version` names the broker in the report).
    #[arg(long, default_value = "kafka_cluster/kafka/kafka")]
    pub kafka_tool: PathBuf,

    /// JVM options of the perf tests, after the launcher's (which cap the JIT at C1 for
    /// short-lived tools); separated by spaces.
    #[arg(
        long,
        default_value = "-XX:TieredStopAtLevel=4",
        allow_hyphen_values = true
    )]
    pub perf_test_jvm_options: String,

    /// Instead of the benchmark: run (b) and (c) under `valgrind --tool=callgrind` over a small
    /// input and report instructions per record (callgrind.json and callgrind.md in `--out`).
    #[arg(long)]
    pub callgrind: bool,

    /// Records of the callgrind runs.
    #[arg(long, default_value = "50000")]
    pub callgrind_records: u64,

    /// The valgrind to run callgrind with (callgrind_control is looked up beside it).
    #[arg(long, default_value = "valgrind")]
    pub valgrind: PathBuf,

    /// Input rate of the fixed-rate latency runs, records per second (the other latency run
    /// of each scenario is at half its own measured maximum).
    #[arg(long, default_value = "10000")]
    pub latency_rate: u64,

    /// Duration of each latency run, seconds.
    #[arg(long, default_value = "10")]
    pub latency_seconds: u64,

    /// The stage-host binary.
    #[arg(long, default_value = "target/release/stage-host")]
    pub stage_host: PathBuf,

    /// The stage-two plugin library.
    #[arg(long, default_value = "target/release/libstage_two.so")]
    pub plugin: PathBuf,

    /// Python interpreter with confluent-kafka and fastavro.
    #[arg(
        long,
        env = "STAGE_BENCH_PYTHON",
        default_value = "~/.cache/stage-host/venv/bin/python"
    )]
    pub python: String,

    /// The Python bridge plugin for scenario (f).
    #[arg(long, default_value = "target/release/libpython_stage.so")]
    pub python_plugin: PathBuf,

    /// The Python library's files (its example stage two runs in scenario (f)).
    #[arg(long, env = "STAGE_HOST_SEED", default_value = "../shared/seed")]
    pub seed: PathBuf,

    /// The Python stage script.
    #[arg(long, default_value = "bench/python/stage_two.py")]
    pub python_script: PathBuf,

    /// The Kafka Streams peer's jar (`mvn -B -f bench/kstreams/pom.xml package`; scripts/bench
    /// builds it).
    #[arg(long, default_value = "bench/kstreams/target/stage-kstreams.jar")]
    pub kstreams_jar: PathBuf,

    /// The java that runs the Kafka Streams peer.
    #[arg(long, env = "JAVA", default_value = "java")]
    pub java: String,

    /// JVM options of the Kafka Streams peer, separated by spaces: its heap bound (the heap
    /// grows towards the bound, so peak RSS depends on it).
    #[arg(long, default_value = "-Xmx128m", allow_hyphen_values = true)]
    pub kstreams_jvm_options: String,

    /// Stream threads of the Kafka Streams peer (`num.stream.threads`).
    #[arg(long, default_value = "1")]
    pub kstreams_threads: u32,

    /// Where child processes' logs go.
    #[arg(long, default_value = "target/stage-bench")]
    pub log_dir: PathBuf,

    /// Cluster connection.
    #[command(flatten)]
    pub connection: Connection,
}

/// Child roles: each runs until SIGTERM, like `stage-host`.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Raw consume → produce of the bytes, with the host's settings and commit-after-ack.
    #[command(hide = true)]
    Passthrough(ChildArgs),
    /// The stage-two transform linked into the host's runner, no plugin library.
    #[command(hide = true)]
    LinkedStage(ChildArgs),
}

/// Topics and group of a child.
#[derive(Debug, Clone, Args)]
pub struct ChildArgs {
    /// Topic to consume.
    #[arg(long)]
    pub input_topic: String,
    /// Topic to produce to.
    #[arg(long)]
    pub output_topic: String,
    /// Consumer group.
    #[arg(long)]
    pub group_id: String,
    /// Most records per batch (the host's default).
    #[arg(long, default_value_t = stage_host::runner_parts::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Longest wait to fill a batch, milliseconds (the host's default).
    #[arg(long, default_value_t = stage_host::runner_parts::DEFAULT_BATCH_WAIT_MS)]
    pub batch_wait_ms: u64,
}
