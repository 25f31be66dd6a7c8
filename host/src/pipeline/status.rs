//! `pipeline status`: the supervisor's snapshot as a table (or as its JSON).

use serde_json::Value;
use std::fmt::Write;

/// Renders a status snapshot (see `Supervisor::snapshot`) as a table, one row per process.
pub fn render(snapshot: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {} (supervisor pid {}, file {})",
        snapshot["pipeline"].as_str().unwrap_or("?"),
        snapshot["supervisor_pid"],
        snapshot["file"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "{:<12} {:>3} {:>8} {:<10} {:<12} {:<20} {:<14} {:>10} {:>10} {:>9} {:>5} {:>8}  LIBRARY",
        "STAGE",
        "#",
        "PID",
        "ROLE",
        "STATE",
        "PLUGIN",
        "SHA256",
        "IN",
        "OUT",
        "LAG",
        "GAPS",
        "RESTARTS",
    );
    for stage in snapshot["stages"].as_array().into_iter().flatten() {
        let name = stage["name"].as_str().unwrap_or("?");
        let procs = stage["processes"].as_array().cloned().unwrap_or_default();
        if procs.is_empty() {
            let _ = writeln!(
                out,
                "{name:<12} {:>3} {:>8} {:<10} {:<12}",
                "-", "-", "-", "stopped"
            );
        }
        for p in procs {
            let mut state = p["state"].as_str().unwrap_or("?").to_string();
            if p["crash_loop"] == true {
                state.push_str(" (crash loop)");
            }
            let plugin = format!(
                "{} {}",
                p["plugin_name"].as_str().unwrap_or(""),
                p["version"].as_str().unwrap_or("")
            );
            let sha = p["sha256"].as_str().unwrap_or("");
            let _ = writeln!(
                out,
                "{name:<12} {:>3} {:>8} {:<10} {:<12} {:<20} {:<14} {:>10} {:>10} {:>9} {:>5} {:>8}  {}",
                p["replica"].to_string(),
                p["pid"]
                    .as_u64()
                    .map(|v| v.to_string())
                    .unwrap_or("-".into()),
                p["role"].as_str().unwrap_or("?"),
                state,
                plugin.trim(),
                &sha[..sha.len().min(12)],
                p["records_in"].to_string(),
                p["records_out"].to_string(),
                p["lag"]
                    .as_u64()
                    .map(|v| v.to_string())
                    .unwrap_or("-".into()),
                p["offset_gaps"].as_u64().unwrap_or(0).to_string(),
                p["restarts"].to_string(),
                p["plugin"].as_str().unwrap_or("?"),
            );
            if let Some(last) = p["last_exit"].as_str() {
                if p["state"] != "ready" {
                    let _ = writeln!(out, "{:<12}     last exit: {last}", "");
                }
            }
        }
    }
    out
}
