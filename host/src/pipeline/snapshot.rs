//! The state of a running pipeline as the supervisor reports it (`pipeline status --json`, the
//! answer to a control `status` request), typed on both sides: the supervisor builds it, and
//! `pipeline status`, the live view and `pipeline swap` read it.

use crate::protocol::Counters;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcState {
    /// Spawned, not yet ready.
    Starting,
    /// Serving.
    Ready,
    /// Told to stop: finishing its batch, flushing, committing, leaving the group.
    Draining,
    /// Exited on its own with an error.
    Crashed,
    /// Crashed, restart scheduled.
    BackingOff,
    /// A source that finished (exit 0).
    Finished,
    /// Exited after being told to stop.
    Stopped,
}

impl ProcState {
    /// The name `pipeline status` shows.
    pub fn name(self) -> &'static str {
        match self {
            ProcState::Starting => "starting",
            ProcState::Ready => "ready",
            ProcState::Draining => "draining",
            ProcState::Crashed => "crashed",
            ProcState::BackingOff => "backing-off",
            ProcState::Finished => "finished",
            ProcState::Stopped => "stopped",
        }
    }
}

/// Why a process exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the stage's current library; restarted when it crashes.
    Serving,
    /// Runs a library being swapped in; never restarted, a crash fails the swap.
    Candidate,
    /// Being drained after a swap.
    Retiring,
}

impl Role {
    /// The name `pipeline status` shows.
    pub fn name(self) -> &'static str {
        match self {
            Role::Serving => "serving",
            Role::Candidate => "candidate",
            Role::Retiring => "retiring",
        }
    }
}

/// The whole pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always true (a failed request answers `{"ok": false, "error": ...}` instead).
    pub ok: bool,
    /// The pipeline's name.
    pub pipeline: String,
    /// Its file.
    pub file: PathBuf,
    /// The supervisor's pid.
    pub supervisor_pid: u32,
    /// Its stages, in start order.
    pub stages: Vec<StageSnapshot>,
}

/// One stage and its processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageSnapshot {
    /// The stage's name in the file.
    pub name: String,
    /// Its library.
    pub plugin: PathBuf,
    /// Its config.
    pub config: serde_json::Value,
    /// The replicas it should have.
    pub replicas: u32,
    /// Its processes (serving, and during a swap candidates and retiring ones).
    pub processes: Vec<ProcessSnapshot>,
}

/// One process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessSnapshot {
    /// Its replica number.
    pub replica: u32,
    /// Its pid (the last one, once exited).
    pub pid: Option<u32>,
    /// Why it exists.
    pub role: Role,
    /// Where it is.
    pub state: ProcState,
    /// Whether it crashed often lately.
    pub crash_loop: bool,
    /// The library it runs.
    pub plugin: PathBuf,
    /// The plugin's stage name, version and kind, once it reported ready.
    pub plugin_name: String,
    /// See `plugin_name`.
    pub version: String,
    /// See `plugin_name`.
    pub kind: String,
    /// sha256 of its library when started.
    pub sha256: String,
    /// Whether it got an assignment since it started.
    pub joined: bool,
    /// What it counted so far.
    #[serde(flatten)]
    pub counters: Counters,
    /// Where it serves metrics, if it does.
    pub metrics_addr: Option<String>,
    /// Restarts so far.
    pub restarts: u32,
    /// How its last run ended (with the reason it gave).
    pub last_exit: Option<String>,
    /// Seconds since the current incarnation started.
    pub uptime_secs: u64,
}

impl Snapshot {
    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageSnapshot> {
        self.stages.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_with_counters_inline() {
        let snapshot = Snapshot {
            ok: true,
            pipeline: "p".into(),
            file: "p.toml".into(),
            supervisor_pid: 1,
            stages: vec![StageSnapshot {
                name: "two".into(),
                plugin: "lib.so".into(),
                config: serde_json::json!({}),
                replicas: 1,
                processes: vec![ProcessSnapshot {
                    replica: 0,
                    pid: Some(7),
                    role: Role::Serving,
                    state: ProcState::BackingOff,
                    crash_loop: false,
                    plugin: "lib.so".into(),
                    plugin_name: "stage-two".into(),
                    version: "0.1.0".into(),
                    kind: "stage".into(),
                    sha256: "ab".into(),
                    joined: true,
                    counters: Counters {
                        records_in: 5,
                        lag: Some(2),
                        ..Counters::default()
                    },
                    metrics_addr: None,
                    restarts: 1,
                    last_exit: Some("exit code 1".into()),
                    uptime_secs: 3,
                }],
            }],
        };
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["stages"][0]["processes"][0]["records_in"], 5);
        assert_eq!(json["stages"][0]["processes"][0]["state"], "backing-off");
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(
            back.stage("two").unwrap().processes[0].counters.lag,
            Some(2)
        );
    }
}
