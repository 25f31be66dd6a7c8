//! stage-three
