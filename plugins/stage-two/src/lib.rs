//! stage-two
