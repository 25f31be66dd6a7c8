//! Pipelines: several stages, one supervised OS process per stage replica, controlled over a
//! Unix socket and hot-swapped without losing a record.
//!
//! - [`file`]: the pipeline file (TOML) and its model.
//! - [`process`]: starting a stage process that can never be orphaned, reading its status.
//! - [`supervisor`]: ordered start, restarts with backoff, ordered stop.
//! - [`swap`]: checking a new library and handing partitions over to it, or rolling back.
//! - [`control`]: the control socket and its JSON line protocol.
//! - [`status`]: rendering the supervisor's snapshot.
//! - [`watch`] and [`progress`]: the live view (`status --watch`) and its rates and ETA.

mod canary;
mod canary_compare;
pub mod control;
pub mod file;
pub mod process;
pub mod progress;
mod restart;
pub mod snapshot;
pub mod status;
pub mod supervisor;
pub mod swap;
pub mod watch;

use clap::Subcommand;
use control::Request;
use file::Pipeline;
use std::path::PathBuf;
use std::time::Duration;

/// `stage-host pipeline ...`
#[derive(Debug, Subcommand)]
// Parsed once per process: the canary's many flags cost nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum PipelineCommand {
    /// Start the stages of a pipeline file in order and supervise them until SIGINT/SIGTERM.
    Run {
        /// The pipeline file.
        file: PathBuf,
    },
    /// Show stages, processes, plugin versions and hashes, states and record counts; with
    /// `--watch`, a live view per stage: throughput, consumer lag and catch-up progress.
    Status {
        /// The pipeline file.
        file: PathBuf,
        /// Print the supervisor's JSON.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// Refresh every `--interval-ms` until Ctrl-C (redrawn on a terminal, one snapshot
        /// after another otherwise).
        #[arg(long)]
        watch: bool,
        /// How often `--watch` refreshes, in milliseconds (at least 250).
        #[arg(long, default_value = "1000", requires = "watch", value_name = "MS")]
        interval_ms: u64,
    },
    /// Hot-swap one stage of a running pipeline to another library.
    Swap {
        /// The stage's name in the pipeline file.
        stage: String,
        /// The new library: a new file, never one a running process has mapped.
        plugin: PathBuf,
        /// The pipeline file.
        #[arg(long, short = 'f', env = "STAGE_HOST_PIPELINE")]
        file: PathBuf,
        /// A new stage config (JSON) for the new library; default: the current one.
        #[arg(long)]
        config_json: Option<String>,
        /// Swap a source that cannot resume (keeps no checkpoint) anyway: the new version
        /// starts from its beginning and sends its records again. Without it such a swap is
        /// refused; a source that resumes goes on where the old version stopped.
        #[arg(long)]
        restart_source: bool,
    },
    /// Run a new version of a stage beside the live one on the same input, compare their
    /// outputs input by input, and report; with `--promote`, swap to it when it passes.
    Canary(canary::CanaryArgs),
    /// Re-read the pipeline file and swap every stage whose definition changed (as SIGHUP).
    Reload {
        /// The pipeline file.
        file: PathBuf,
        /// As `swap --restart-source`, for a source whose definition changed.
        #[arg(long)]
        restart_source: bool,
    },
    /// Stop a running pipeline, source first (as SIGTERM).
    Stop {
        /// The pipeline file.
        file: PathBuf,
    },
}

/// Why a pipeline command failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The pipeline file is unusable.
    #[error(transparent)]
    File(#[from] file::FileError),
    /// A supervisor already serves this pipeline.
    #[error("the pipeline is already running (control socket {0} answers)")]
    AlreadyRunning(PathBuf),
    /// No supervisor answers.
    #[error("the pipeline is not running: {reason}")]
    NotRunning {
        /// The control socket.
        socket: PathBuf,
        /// Why, naming the socket.
        reason: String,
    },
    /// A stage could not start; `code` is the exit code the pipeline ends with: the stage
    /// process's own (2 bad config, 3 bad plugin, 5 refused by the cluster).
    #[error("{reason}")]
    StartFailed {
        /// Why, in one line.
        reason: String,
        /// The exit code.
        code: i32,
    },
    /// The supervisor refused or a swap rolled back.
    #[error("{0}")]
    Refused(String),
    /// Local I/O.
    #[error("{0}")]
    Io(String),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
}

impl PipelineError {
    /// No supervisor answered on `socket`. A socket file that refuses connections was left by
    /// a supervisor that did not stop cleanly (SIGKILL): the pipeline is not running, which
    /// is what the operator must read, not the socket's error.
    pub fn not_running(socket: PathBuf, error: &std::io::Error) -> PipelineError {
        let reason = match error.kind() {
            std::io::ErrorKind::NotFound => format!("no control socket at {}", socket.display()),
            std::io::ErrorKind::ConnectionRefused => format!(
                "its supervisor is gone and left a stale control socket at {} (`pipeline run` replaces it)",
                socket.display()
            ),
            _ => format!("cannot reach {}: {error}", socket.display()),
        };
        PipelineError::NotRunning { socket, reason }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        use crate::error::exit_code;
        match self {
            PipelineError::File(_) | PipelineError::Usage(_) | PipelineError::AlreadyRunning(_) => {
                exit_code::BAD_CONFIG
            }
            PipelineError::StartFailed { code, .. } => *code,
            PipelineError::NotRunning { .. } => exit_code::UNREACHABLE,
            PipelineError::Refused(_) | PipelineError::Io(_) => exit_code::RUN_FAILED,
        }
    }
}

/// Runs a `pipeline` subcommand.
pub fn run_command(command: &PipelineCommand) -> Result<(), PipelineError> {
    match command {
        PipelineCommand::Run { file } => {
            let pipeline = Pipeline::load(file)?;
            supervisor::Supervisor::new(pipeline)?.run()
        }
        PipelineCommand::Status {
            file,
            watch: true,
            interval_ms,
            ..
        } => watch::run(Duration::from_millis(*interval_ms), || {
            ask(file, &Request::Status).and_then(read_snapshot)
        }),
        PipelineCommand::Status { file, json, .. } => {
            let answer = ask(file, &Request::Status)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&answer).expect("JSON"));
            } else {
                print!("{}", status::render(&read_snapshot(answer)?));
            }
            Ok(())
        }
        PipelineCommand::Swap {
            stage,
            plugin,
            file,
            config_json,
            restart_source,
        } => {
            let config = config_json
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| PipelineError::Usage(format!("--config-json: {e}")))?;
            let plugin = std::path::absolute(plugin).unwrap_or(plugin.clone());
            let request = Request::Swap {
                stage: stage.clone(),
                plugin,
                config,
                restart_source: *restart_source,
            };
            report(ask(file, &request)?)
        }
        PipelineCommand::Canary(args) => {
            let exe = Pipeline::load(&args.file)?
                .stage_host
                .map(Ok)
                .unwrap_or_else(std::env::current_exe)
                .map_err(|e| PipelineError::Io(format!("finding stage-host: {e}")))?;
            canary::run(args, &exe)
        }
        PipelineCommand::Reload {
            file,
            restart_source,
        } => report(ask(
            file,
            &Request::Reload {
                restart_source: *restart_source,
            },
        )?),
        PipelineCommand::Stop { file } => report(ask(file, &Request::Stop)?),
    }
}

/// The supervisor's answer to a status request, typed.
fn read_snapshot(answer: serde_json::Value) -> Result<snapshot::Snapshot, PipelineError> {
    serde_json::from_value(answer)
        .map_err(|e| PipelineError::Io(format!("unreadable status from the supervisor: {e}")))
}

/// Prints the answer; a refusal or rollback is an error whose message says why.
pub(super) fn report(answer: serde_json::Value) -> Result<(), PipelineError> {
    println!("{answer}");
    let outcome: control::Outcome = serde_json::from_value(answer)
        .map_err(|e| PipelineError::Io(format!("unreadable answer from the supervisor: {e}")))?;
    if outcome.ok {
        return Ok(());
    }
    let prefix = if outcome.rolled_back == Some(true) {
        "swap rolled back, the old library keeps serving: "
    } else {
        ""
    };
    Err(PipelineError::Refused(format!(
        "{prefix}{}",
        outcome.failure()
    )))
}

fn ask(file: &std::path::Path, request: &Request) -> Result<serde_json::Value, PipelineError> {
    let pipeline = Pipeline::load(file)?;
    let socket = pipeline.socket_path();
    control::request(&socket, request).map_err(|e| PipelineError::not_running(socket, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_control_socket_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let missing = control::request(&socket, &Request::Status).unwrap_err();
        let e = PipelineError::not_running(socket.clone(), &missing).to_string();
        assert_eq!(
            e,
            format!(
                "the pipeline is not running: no control socket at {}",
                socket.display()
            )
        );
        // What a supervisor killed with SIGKILL leaves: the socket file, nobody listening.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let refused = control::request(&socket, &Request::Status).unwrap_err();
        let e = PipelineError::not_running(socket.clone(), &refused);
        assert_eq!(e.exit_code(), crate::error::exit_code::UNREACHABLE);
        let e = e.to_string();
        assert!(
            e.starts_with("the pipeline is not running: its supervisor is gone and left a stale control socket at"),
            "{e}"
        );
        assert!(!e.contains("refused") && !e.contains("os error"), "{e}");
    }
}
