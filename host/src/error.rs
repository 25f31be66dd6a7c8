//! Errors that end a `stage-host` process, each with its exit code, so a supervisor can tell a
//! bad deployment (which a restart will not fix) from a crash (which it may).

use crate::protocol::FailureKind;
use crate::runner::RunError;
use confluent::{RegistryError, TopicError};

/// Exit code when a run ends with an error.
pub mod exit_code {
    /// Stopped by a signal (after draining, or during start-up before consuming anything).
    pub const STOPPED: i32 = 0;
    /// A record failed under the `fail` policy, or Kafka could not deliver.
    pub const RUN_FAILED: i32 = 1;
    /// Bad arguments or configuration.
    pub const BAD_CONFIG: i32 = 2;
    /// The plugin could not be loaded, is incompatible, or its constructor failed.
    pub const BAD_PLUGIN: i32 = 3;
    /// The broker or the Schema Registry could not be reached at start-up.
    pub const UNREACHABLE: i32 = 4;
    /// The cluster refused: an incompatible schema, a topic it would not create.
    pub const REFUSED: i32 = 5;
}

pub(crate) use confluent::one_line;

/// Why `stage-host` stopped.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// The plugin was refused.
    #[error("{0}")]
    Plugin(String),
    /// A topic operation failed.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// A stop signal arrived while waiting for the broker or a topic: nothing was consumed.
    #[error("stopped by a signal during start-up, before anything was consumed")]
    Stopped,
    /// Waited for the input topic, which did not appear.
    #[error("input topic {topic} does not exist (waited {waited_secs} s); start the stage that produces it, or create it")]
    MissingInput {
        /// The topic.
        topic: String,
        /// How long we waited.
        waited_secs: u64,
    },
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Records failed in a run that reports them all instead of stopping (`harness`).
    #[error("{0}")]
    RecordsFailed(String),
    /// A `pipeline` command failed.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
}

impl HostError {
    /// Whether the process ended because it was asked to stop, not because something failed.
    pub fn is_stop(&self) -> bool {
        matches!(self, HostError::Stopped)
    }

    /// What kind of failure this is: it decides the exit code, and a supervisor reads it in
    /// the process's `failed` status line.
    pub fn kind(&self) -> FailureKind {
        match self {
            HostError::Config(_) => FailureKind::Config,
            HostError::Plugin(_) | HostError::Run(RunError::Plugin(_)) => FailureKind::Plugin,
            HostError::Topic(e) => FailureKind::of(e.failure()),
            HostError::Registry(e) => FailureKind::of(e.failure()),
            HostError::MissingInput { .. } => FailureKind::Unreachable,
            HostError::Run(RunError::Refused(_)) => FailureKind::Refused,
            HostError::Run(RunError::RecordFailed(_) | RunError::CircuitOpen(_))
            | HostError::RecordsFailed(_) => FailureKind::Record,
            // Stopping is not a failure; its code is 0 (see `exit_code`).
            HostError::Stopped | HostError::Run(_) => FailureKind::Run,
            HostError::Pipeline(e) => {
                FailureKind::from_exit_code(e.exit_code()).unwrap_or(FailureKind::Run)
            }
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            HostError::Stopped => exit_code::STOPPED,
            HostError::Pipeline(e) => e.exit_code(),
            other => other.kind().exit_code(),
        }
    }
}
