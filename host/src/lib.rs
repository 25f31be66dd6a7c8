//! `stage-host`: runs one stage plugin as one process.
//!
//! Data flows one way: record → [`confluent::framing`] → plugin batch → [`confluent::framing`] → produce → commit
//! ([`runner`]). [`start`] is the start-up sequence; the binary in `main.rs` only parses
//! arguments, sets up logging and maps errors to exit codes ([`error::exit_code`]).

pub mod admin;
pub mod avro_json;
pub mod breaker;
pub mod cli;
pub mod client_events;
pub mod dry_run;
pub mod error;
pub mod harness;
pub mod inspect;
pub mod memory;
pub mod observe;
pub mod pipeline;
pub mod policy;
pub mod protocol;
pub mod runner;
pub mod scaffold;
pub mod settings;
pub mod shutdown;
pub mod stage_config;
pub mod start;
pub mod status_report;
pub mod topics;
pub mod trust;
pub mod validate;
pub mod watchdog;
