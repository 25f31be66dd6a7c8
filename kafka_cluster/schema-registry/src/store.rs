//! Durable state: one JSON document in the data directory, replaced atomically on each change.
//!
//! A development registry holds tens of schemas, so rewriting the whole document is cheap and
//! keeps the format trivially inspectable. Each change is written to a temporary file, synced,
//! and renamed over `registry.json`, so a crash leaves either the old or the new state, never a
//! torn one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compat::CompatibilityLevel;

const STATE_FILE: &str = "registry.json";
const TEMP_FILE: &str = "registry.json.tmp";

/// Failure to read or write the data directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory or a file in it could not be read, created or written.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The state file exists but is not a state document this version can read.
    #[error("cannot parse {path}; move it away to start with an empty registry")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// A schema known by id. Kept while any subject version, live or soft-deleted, refers to it,
/// so consumers can still decode old records after a soft delete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredSchema {
    /// The text as first registered; returned verbatim by reads.
    pub schema: String,
}

/// One version of a subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubjectVersion {
    /// 1, 2, 3... within the subject.
    pub version: u32,
    /// The global schema id.
    pub id: u32,
    /// Soft-deleted: invisible to reads (unless asked with `deleted=true`) and to
    /// compatibility checks, but kept until a permanent delete.
    #[serde(default)]
    pub deleted: bool,
}

/// Everything the registry persists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct State {
    /// The id the next new schema gets; ids are never reused.
    pub next_id: u32,
    /// Schemas by global id.
    pub schemas: BTreeMap<u32, StoredSchema>,
    /// Versions of each subject, in version order.
    pub subjects: BTreeMap<String, Vec<SubjectVersion>>,
    /// The global compatibility level.
    #[serde(default)]
    pub global_compatibility: CompatibilityLevel,
    /// Subject-level overrides.
    #[serde(default)]
    pub subject_compatibility: BTreeMap<String, CompatibilityLevel>,
}

/// The data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the data directory and reads its state, empty if new.
    pub fn open(dir: &Path) -> Result<(Self, State), StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            action: "create data directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(STATE_FILE);
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path, source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                next_id: 1,
                ..State::default()
            },
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        Ok((
            Self {
                dir: dir.to_path_buf(),
            },
            state,
        ))
    }

    /// Replaces the stored state with `state`: temp file, fsync, rename, fsync directory.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let temp = self.dir.join(TEMP_FILE);
        let target = self.dir.join(STATE_FILE);
        let bytes = serde_json::to_vec_pretty(state).expect("state always serialises");
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        let mut file = fs::File::create(&temp).map_err(io("create", &temp))?;
        file.write_all(&bytes).map_err(io("write", &temp))?;
        file.sync_all().map_err(io("sync", &temp))?;
        drop(file);
        fs::rename(&temp, &target).map_err(io("rename into place", &target))?;
        // Make the rename itself durable; not every filesystem supports syncing a directory.
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut state) = Store::open(dir.path()).unwrap();
        assert_eq!(state.next_id, 1);
        state.next_id = 2;
        state.schemas.insert(
            1,
            StoredSchema {
                schema: "\"string\"".into(),
            },
        );
        state.subjects.insert(
            "s".into(),
            vec![SubjectVersion {
                version: 1,
                id: 1,
                deleted: true,
            }],
        );
        state
            .subject_compatibility
            .insert("s".into(), CompatibilityLevel::Full);
        store.save(&state).unwrap();
        let (_, reread) = Store::open(dir.path()).unwrap();
        assert_eq!(reread, state);
    }

    #[test]
    fn corrupt_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("registry.json"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
