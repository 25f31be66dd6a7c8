//! stage-host
