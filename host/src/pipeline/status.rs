//! `pipeline status`: the supervisor's snapshot as a table (or as its JSON).

use super::snapshot::Snapshot;
use std::fmt::Write;

/// Renders a status snapshot as a table, one row per process. Every record a process took
/// in is counted once: `IN = PROCESSED + FAILED (skipped or dead-lettered) + IN-FLIGHT`.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {} (supervisor pid {}, file {})",
        snapshot.pipeline,
        snapshot.supervisor_pid,
        snapshot.file.display()
    );
    let _ = writeln!(
        out,
        "{:<12} {:>3} {:>8} {:<10} {:<12} {:<20} {:<14} {:>10} {:>10} {:>8} {:>9} {:>10} {:>9} {:>5} {:>8}  LIBRARY",
        "STAGE",
        "#",
        "PID",
        "ROLE",
        "STATE",
        "PLUGIN",
        "SHA256",
        "IN",
        "PROCESSED",
        "FAILED",
        "IN-FLIGHT",
        "OUT",
        "LAG",
        "GAPS",
        "RESTARTS",
    );
    for stage in &snapshot.stages {
        let name = &stage.name;
        if stage.processes.is_empty() {
            let _ = writeln!(
                out,
                "{name:<12} {:>3} {:>8} {:<10} {:<12}",
                "-", "-", "-", "stopped"
            );
        }
        for p in &stage.processes {
            let mut state = p.state.name().to_string();
            if p.crash_loop {
                state.push_str(" (crash loop)");
            }
            let plugin = format!("{} {}", p.plugin_name, p.version);
            let sha = &p.sha256[..p.sha256.len().min(12)];
            let dash = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or("-".into());
            let _ = writeln!(
                out,
                "{name:<12} {:>3} {:>8} {:<10} {:<12} {:<20} {:<14} {:>10} {:>10} {:>8} {:>9} {:>10} {:>9} {:>5} {:>8}  {}",
                p.replica,
                dash(p.pid.map(u64::from)),
                p.role.name(),
                state,
                plugin.trim(),
                sha,
                p.counters.records_in,
                p.counters.processed,
                p.counters.skipped + p.counters.dead_lettered,
                p.counters.in_flight,
                p.counters.records_out,
                dash(p.counters.lag),
                p.counters.offset_gaps,
                p.restarts,
                p.plugin.display(),
            );
            if let Some(last) = &p.last_exit {
                if p.state != super::snapshot::ProcState::Ready {
                    let _ = writeln!(out, "{:<12}     last exit: {last}", "");
                }
            }
        }
    }
    out
}
