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

/// What a stage does when the offsets it is handed jump (see `runner::continuity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OffsetGapPolicy {
    /// Count it and log a warning with the range and the likely reason (transaction markers
    /// are counted and logged at debug level only); go on.
    #[default]
    Warn,
    /// Stop the stage before it commits past any gap (exit 1): for an input known to be
    /// neither transactional nor compacted, where no gap is explained.
    Fail,
}
