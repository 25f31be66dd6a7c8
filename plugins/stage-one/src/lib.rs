//! stage-one
