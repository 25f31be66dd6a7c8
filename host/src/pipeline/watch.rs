//! `pipeline status --watch`: a live view of a running pipeline, one row per stage, redrawn
//! every interval from the supervisor's status snapshot.
//!
//! On a terminal each frame replaces the last (ANSI clear and home); when stdout is not a
//! terminal (a pipe, a file, a test) every frame is printed after the previous one, so the
//! output is a log of snapshots. Ctrl-C (or SIGTERM) ends it with exit code 0. Rates and the
//! catch-up estimate come from [`super::progress`].

use super::progress::{human_duration, ProcessSample, StageSample, StageTrend};
use super::snapshot::{ProcState, ProcessSnapshot, Snapshot};
use super::PipelineError;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shortest interval accepted: the stage processes report counters at most every 250 ms.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// The last line of each frame.
const SKEW_NOTE: &str = "(each process's counts are its latest report, sent up to 4 times a second on its own schedule, so a stage's IN may run ahead of the OUT of the stage before it)";

/// Redraws the view every `interval` until Ctrl-C. `status` asks the supervisor.
pub fn run(
    interval: Duration,
    status: impl Fn() -> Result<Snapshot, PipelineError>,
) -> Result<(), PipelineError> {
    if interval < MIN_INTERVAL {
        return Err(PipelineError::Usage(format!(
            "--interval-ms must be at least {}",
            MIN_INTERVAL.as_millis()
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| PipelineError::Io(format!("installing signal handlers: {e}")))?;
    }
    // The first answer decides whether there is a pipeline to watch at all.
    let mut snapshot = Some(status()?);
    let terminal = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut view = View::default();
    let mut stdout = std::io::stdout().lock();
    loop {
        let now = Instant::now();
        let frame = match snapshot.take().map(Ok).unwrap_or_else(&status) {
            Ok(snapshot) => view.frame(&snapshot, now, now - started, interval),
            Err(e) => format!("{e}\n"),
        };
        let clear = if terminal { "\x1b[H\x1b[2J" } else { "" };
        let separator = if terminal { "" } else { "\n" };
        // A closed stdout (`| head`) ends the view like Ctrl-C does.
        if write!(stdout, "{clear}{frame}{separator}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
        let next = now + interval;
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50).min(next - Instant::now()));
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}

/// The view's memory between frames: each stage's trend.
#[derive(Debug, Default)]
pub struct View {
    trends: BTreeMap<String, StageTrend>,
    last_at: Option<Instant>,
}

impl View {
    /// Takes `snapshot` (taken at `now`) and renders the frame.
    pub fn frame(
        &mut self,
        snapshot: &Snapshot,
        now: Instant,
        watching: Duration,
        interval: Duration,
    ) -> String {
        let elapsed = self.last_at.map(|t| now - t).unwrap_or_default();
        self.last_at = Some(now);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "pipeline {} (supervisor pid {})   watching {}, every {}s, Ctrl-C to quit",
            snapshot.pipeline,
            snapshot.supervisor_pid,
            human_duration(watching),
            interval.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "{:<12} {:<22} {:>5} {:>10} {:>10} {:>9} {:>9} {:>9}  PROGRESS",
            "STAGE", "STATE", "PROCS", "IN", "OUT", "IN/S", "OUT/S", "LAG"
        );
        for stage in &snapshot.stages {
            let name = stage.name.clone();
            let procs = &stage.processes;
            let source = procs.iter().any(|p| p.kind == "source");
            let trend = self.trends.entry(name.clone()).or_default();
            trend.update(sample(procs), elapsed);
            let (records_in, records_out) = trend.totals();
            let rate = |r: Option<f64>| r.map(|r| format!("{r:.0}")).unwrap_or("-".into());
            let (in_total, in_rate) = if source {
                ("-".to_string(), "-".to_string())
            } else {
                (records_in.to_string(), rate(trend.in_rate.value()))
            };
            let ready = procs.iter().filter(|p| p.state == ProcState::Ready).count();
            let _ = writeln!(
                out,
                "{name:<12} {:<22} {:>5} {:>10} {:>10} {:>9} {:>9} {:>9}  {}",
                state_summary(procs),
                format!("{ready}/{}", stage.replicas),
                in_total,
                records_out,
                in_rate,
                rate(trend.out_rate.value()),
                trend.lag().map(|l| l.to_string()).unwrap_or("-".into()),
                trend.progress(),
            );
        }
        // The processes report their counters on their own schedule, and the supervisor has
        // no way to ask them all at one moment, so the rows are not one instant: say so.
        let _ = writeln!(out, "{SKEW_NOTE}");
        out
    }
}

/// The processes' counters, keyed by replica and pid (a restarted process is a new key).
fn sample(procs: &[ProcessSnapshot]) -> StageSample {
    procs
        .iter()
        .map(|p| {
            let key = (u64::from(p.replica), u64::from(p.pid.unwrap_or(0)));
            let sample = ProcessSample {
                records_in: p.counters.records_in,
                records_out: p.counters.records_out,
                lag: p.counters.lag,
            };
            (key, sample)
        })
        .collect()
}

/// `ready`, or `ready 1, starting 1` when the processes differ; `(crash loop)` if any is in one.
fn state_summary(procs: &[ProcessSnapshot]) -> String {
    if procs.is_empty() {
        return "stopped".into();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in procs {
        *counts.entry(p.state.name()).or_default() += 1;
    }
    let mut text = if counts.len() == 1 {
        counts.keys().next().expect("one state").to_string()
    } else {
        counts
            .iter()
            .map(|(state, n)| format!("{state} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if procs.iter().any(|p| p.crash_loop) {
        text.push_str(" (crash loop)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot(records: u64, lag: u64) -> Snapshot {
        let defaults = json!({"ok": true, "file": "p.toml", "plugin": "lib.so", "config": {},
            "role": "serving", "crash_loop": false, "plugin_name": "", "version": "",
            "sha256": "", "joined": true, "skipped": 0, "dead_lettered": 0,
            "metrics_addr": null, "restarts": 0, "last_exit": null, "uptime_secs": 1});
        let fill = |mut v: serde_json::Value| {
            for (k, d) in defaults.as_object().unwrap() {
                if v.get(k).is_none() {
                    v[k] = d.clone();
                }
            }
            v
        };
        let mut raw = json!({
            "pipeline": "p", "supervisor_pid": 1,
            "stages": [
                {"name": "one", "replicas": 1, "processes": [
                    {"replica": 0, "pid": 10, "state": "ready", "kind": "source",
                     "records_in": 0, "records_out": records, "lag": null}]},
                {"name": "two", "replicas": 2, "processes": [
                    {"replica": 0, "pid": 11, "state": "ready", "kind": "stage",
                     "records_in": records, "records_out": records, "lag": lag},
                    {"replica": 1, "pid": 12, "state": "starting", "kind": "stage",
                     "records_in": 0, "records_out": 0}]}
            ]
        });
        raw = fill(raw);
        for stage in raw["stages"].as_array_mut().unwrap() {
            *stage = fill(stage.clone());
            for p in stage["processes"].as_array_mut().unwrap() {
                *p = fill(p.clone());
            }
        }
        serde_json::from_value(raw).expect("a snapshot")
    }

    #[test]
    fn frames_show_rates_lag_and_progress() {
        let mut view = View::default();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let first = view.frame(&snapshot(100, 1000), start, Duration::ZERO, second);
        assert!(first.contains("IN/S") && first.contains("LAG"), "{first}");
        assert_eq!(
            first.lines().last(),
            Some(SKEW_NOTE),
            "the frame says its rows are not one moment"
        );
        let next = view.frame(&snapshot(600, 500), start + second, second, second);
        let two = next.lines().find(|l| l.starts_with("two")).unwrap();
        let columns: Vec<&str> = two.split_whitespace().collect();
        assert_eq!(
            columns[..9],
            ["two", "ready", "1,", "starting", "1", "1/2", "600", "600", "500"],
            "{two}"
        );
        assert!(two.contains("catching up  50%, ETA 1s"), "{two}");
        let one = next.lines().find(|l| l.starts_with("one")).unwrap();
        let columns: Vec<&str> = one.split_whitespace().collect();
        assert_eq!(
            columns,
            ["one", "ready", "1/1", "-", "600", "-", "500", "-", "-"]
        );
    }
}
