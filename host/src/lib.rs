//! `stage-host`: runs one stage plugin as one process.
//!
//! Data flows one way: record → [`confluent::framing`] → plugin batch → [`confluent::framing`]
//! → produce → commit (the runner). [`run`] is the start-up sequence of a `stage-host
//! --plugin` process and [`run_stage`] the same for any constructed stage, loaded or linked;
//! the binary in `main.rs` only parses arguments ([`commands`]), sets up logging and maps
//! errors to exit codes ([`exit_code`]).
//!
//! The modules are private; what other crates use is re-exported here: the binary's commands,
//! the connection settings, the stage runner's start-up, and the runner parts the benchmark's
//! passthrough ceiling shares with a stage.

mod admin;
mod avro_json;
mod breaker;
mod cli;
mod client_events;
mod dry_run;
mod error;
mod harness;
mod inspect;
mod kafka_properties;
mod memory;
mod observe;
mod pipeline;
mod policy;
mod protocol;
mod replication;
mod runner;
mod scaffold;
mod settings;
mod shutdown;
mod stage_config;
mod start;
mod status_report;
mod topics;
mod trust;
mod validate;
mod watchdog;

pub use error::{exit_code, HostError};
pub use kafka_properties::{Clients, KafkaProperty};
pub use memory::cap_malloc_arenas;
pub use observe::Observer;
pub use protocol::{Counters, FailureKind, StatusEvent};
pub use settings::{Connection, CONSUMER_DEFAULTS, PRODUCER_DEFAULTS};
pub use shutdown::Shutdown;
pub use start::{run, run_stage};
pub use status_report::report as report_status;

/// The command line and what each of its commands runs, for the `stage-host` binary.
pub mod commands {
    pub use crate::admin::schema::run as schema;
    pub use crate::admin::topic::run as topic;
    pub use crate::cli::{Cli, Command, LogFormat, RunArgs};
    pub use crate::harness::run as harness;
    pub use crate::inspect::render as inspect;
    pub use crate::pipeline::run_command as pipeline;
    pub use crate::scaffold::run as new;
    pub use crate::trust::check_plugin_file;
}

/// The runner's defaults and the parts a process that is not a stage can share with one: the
/// benchmark's passthrough ceiling consumes and produces through the same acknowledged
/// producer and ack window.
pub mod runner_parts {
    pub use crate::runner::ack_window::AckWindow;
    pub use crate::runner::delivery::{flush, send, Ack, AckingProducer, DeliveryContext};
    pub use crate::runner::stage::{
        DEFAULT_BATCH_SIZE, DEFAULT_BATCH_WAIT_MS, MAX_IN_FLIGHT_BATCHES,
    };
}
