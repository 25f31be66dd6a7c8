//! What a stage does with a record it cannot process.

use serde::Deserialize;

/// The error policy of a stage, for records that do not decode, whose transform fails or
/// panics, or whose output does not encode. Broker and registry outages are not record
/// errors: they are retried and never reach the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorPolicy {
    /// Stop the stage; the failed record's offset is not committed, so it is read again after
    /// the cause is fixed.
    #[default]
    Fail,
    /// Log and count the record, and go on.
    Skip,
    /// Write the original record, with headers saying what failed, to the dead-letter topic,
    /// and go on.
    DeadLetter,
}
