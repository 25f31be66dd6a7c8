//! Instructions per record: (b) stage-host with `libstage_two.so` and (c) the linked stage,
//! each under `valgrind --tool=callgrind` over a small input. Instruction counts do not
//! depend on what else the machine is doing, so they are the repeatable measure of a stage's
//! cost on a shared machine.
//!
//! Each process starts on an empty input topic. Once it holds its partitions, callgrind is
//! told to dump (part 1: start-up), the records are written, and once the group has committed
//! all of them it dumps again (part 2: processing, idle waits for input included); the rest
//! (shutdown after SIGTERM) is the final part. Instructions are those of every thread of the
//! process (librdkafka's included), not the broker's.

use crate::cli::BenchArgs;
use crate::cluster::Cluster;
use crate::commands::{self, Topics};
use crate::group::GroupWatch;
use crate::preload::{self, RecordMaker, INPUT_PARTITIONS};
use crate::process::StageProcess;
use crate::scenario::{wait_until_committed_within, Scenario};
use anyhow::{bail, Context, Result};
use plugin_api::Stage;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Under callgrind a process runs some 50 times slower: start-up and each step get longer.
const STALL: Duration = Duration::from_secs(600);

/// One process under callgrind.
#[derive(Debug, Clone, Serialize)]
pub struct CallgrindRun {
    /// Which.
    pub scenario: Scenario,
    /// Description.
    pub label: String,
    /// Records processed.
    pub records: u64,
    /// Instructions from exec to holding the partitions.
    pub startup_ir: u64,
    /// Instructions from the first record written to the last one committed.
    pub processing_ir: u64,
    /// Instructions from then to exit (SIGTERM, drain, leave the group).
    pub shutdown_ir: u64,
    /// All of them.
    pub total_ir: u64,
    /// `total_ir / records`.
    pub ir_per_record: f64,
    /// `processing_ir / records`.
    pub processing_ir_per_record: f64,
    /// callgrind's output files (for callgrind_annotate).
    pub files: Vec<PathBuf>,
}

/// The callgrind results.
#[derive(Debug, Serialize)]
pub struct CallgrindReport {
    /// Seconds since the epoch when the run finished.
    pub finished_at_unix: u64,
    /// `valgrind --version`.
    pub valgrind: String,
    /// Records per run.
    pub records: u64,
    /// (b) and (c).
    pub runs: Vec<CallgrindRun>,
}

/// Runs (b) and (c) under callgrind and writes callgrind.json and callgrind.md into `--out`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let valgrind = version(&args.valgrind)?;
    let mut cluster = Cluster::new(&args.connection)?;
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut runs = Vec::new();
    for scenario in [Scenario::Plugin, Scenario::Linked] {
        let run = run_one(args, &mut cluster, run_id, scenario)
            .with_context(|| format!("{} under callgrind", scenario.label()))?;
        tracing::info!(
            scenario = scenario.id(),
            ir_per_record = run.ir_per_record as u64,
            processing_ir_per_record = run.processing_ir_per_record as u64,
            "callgrind"
        );
        runs.push(run);
    }
    cluster.delete_created();
    let report = CallgrindReport {
        finished_at_unix: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        valgrind,
        records: args.callgrind_records,
        runs,
    };
    std::fs::create_dir_all(&args.out)?;
    let md = markdown(&report);
    for (name, text) in [
        (
            "callgrind.json",
            serde_json::to_string_pretty(&report)? + "\n",
        ),
        ("callgrind.md", md.clone()),
    ] {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(file = %path.display(), "written");
    }
    print!("{md}");
    Ok(())
}

fn run_one(
    args: &BenchArgs,
    cluster: &mut Cluster,
    run_id: u64,
    scenario: Scenario,
) -> Result<CallgrindRun> {
    let id = format!("callgrind-{}", scenario.id());
    let input = format!("bench-{run_id}-{id}-input");
    let output = format!("bench-{run_id}-{id}-output");
    let group = format!("bench-{run_id}-{id}");
    cluster.create_topic(&input, INPUT_PARTITIONS)?;
    cluster.create_topic(&output, stage_two::StageTwo::spec().output_topic.partitions)?;
    let mut maker = RecordMaker::for_topic(cluster, &input)?;
    let out_file = args
        .log_dir
        .join(format!("callgrind.{}.out", scenario.id()));
    for stale in dump_files(&out_file) {
        let _ = std::fs::remove_file(stale);
    }
    let command = commands::command_for(
        args,
        scenario,
        Topics {
            input: &input,
            output: &output,
            group: &group,
        },
    )?;
    let log = args.log_dir.join(format!("{id}.log"));
    tracing::info!(scenario = scenario.id(), records = args.callgrind_records, log = %log.display(), "starting under callgrind");
    let mut process =
        StageProcess::start(under_callgrind(&args.valgrind, &out_file, &command), &log)?;
    let measured = (|| {
        let started = Instant::now();
        GroupWatch::new(cluster, &group, &input)?.wait_for(1, STALL)?;
        tracing::info!(
            seconds = started.elapsed().as_secs(),
            "holds its partitions; writing the input"
        );
        control(&args.valgrind, process.id(), &out_file, 1)?;
        preload::write_records(cluster, &mut maker, &input, args.callgrind_records)?;
        wait_until_committed_within(
            cluster,
            &mut process,
            &input,
            &group,
            args.callgrind_records,
            STALL,
        )?;
        control(&args.valgrind, process.id(), &out_file, 2)?;
        anyhow::Ok(())
    })();
    let stopped = process.stop(STALL);
    cluster.delete_topic(&input);
    cluster.delete_topic(&output);
    measured?;
    stopped?;
    let [final_part, startup, processing] = dump_files(&out_file);
    let startup_ir = read_instructions(&startup)?;
    let processing_ir = read_instructions(&processing)?;
    let shutdown_ir = read_instructions(&final_part)?;
    let records = args.callgrind_records;
    let total_ir = startup_ir + processing_ir + shutdown_ir;
    Ok(CallgrindRun {
        scenario,
        label: scenario.label().to_string(),
        records,
        startup_ir,
        processing_ir,
        shutdown_ir,
        total_ir,
        ir_per_record: total_ir as f64 / records.max(1) as f64,
        processing_ir_per_record: processing_ir as f64 / records.max(1) as f64,
        files: vec![startup, processing, final_part],
    })
}

/// `valgrind --tool=callgrind` around `command` (same arguments, environment and directory).
fn under_callgrind(valgrind: &Path, out_file: &Path, command: &Command) -> Command {
    let mut wrapped = Command::new(valgrind);
    wrapped
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// The final part (the base file), then the dumps asked for, `.1` and `.2` (callgrind numbers
/// them).
fn dump_files(out_file: &Path) -> [PathBuf; 3] {
    std::array::from_fn(|i| {
        if i == 0 {
            out_file.to_path_buf()
        } else {
            PathBuf::from(format!("{}.{i}", out_file.display()))
        }
    })
}

/// Asks callgrind in `pid` for dump number `part` and waits until its file is complete.
fn control(valgrind: &Path, pid: u32, out_file: &Path, part: usize) -> Result<()> {
    let tool = match valgrind.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("callgrind_control"),
        _ => PathBuf::from("callgrind_control"),
    };
    let out = Command::new(&tool)
        .args(["-d", &pid.to_string()])
        .output()
        .with_context(|| format!("running {}", tool.display()))?;
    if !out.status.success() {
        bail!(
            "{} -d {pid} failed: {}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let file = PathBuf::from(format!("{}.{part}", out_file.display()));
    let deadline = Instant::now() + STALL;
    while Instant::now() < deadline {
        if std::fs::read_to_string(&file).is_ok_and(|text| instructions(&text).is_some()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("callgrind did not write {}", file.display())
}

fn read_instructions(file: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    instructions(&text).with_context(|| format!("no summary line in {}", file.display()))
}

/// The Ir of one callgrind part: its `summary:` line (Ir is the only event collected).
fn instructions(callgrind_out: &str) -> Option<u64> {
    callgrind_out
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn version(valgrind: &Path) -> Result<String> {
    let out = Command::new(valgrind)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} (apt-get install valgrind)", valgrind.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The results as markdown.
pub fn markdown(report: &CallgrindReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Instructions per record under callgrind ({}), {} stage-one records; Ir counts every \
         thread of the stage's process, librdkafka's included.\n",
        report.valgrind, report.records
    );
    md.push_str(
        "| Scenario | Records | Total Ir | Ir per record | Ir per record, processing only |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|\n");
    for r in &report.runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.0} |",
            r.label, r.records, r.total_ir, r.ir_per_record, r.processing_ir_per_record
        );
    }
    md.push_str(
        "\nIr per record is the process's total (start-up, processing, shutdown) over the \
         records; processing only counts from the first record written into the empty input \
         (the stage already holding its partitions) to the group's commit of the last.\n",
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_come_from_the_summary_line() {
        let out = "version: 1\ncreator: callgrind-3.19.0\npart: 2\nevents: Ir\nfn=(1) main\n0 5\nsummary: 56355121\ntotals: 56355121\n";
        assert_eq!(instructions(out), Some(56_355_121));
        assert_eq!(instructions("events: Ir\nfn=(1) main\n"), None);
        assert_eq!(instructions("summary: many\n"), None);
    }

    #[test]
    fn dumps_are_numbered_after_the_base_file() {
        let [base, one, two] = dump_files(Path::new("target/x/callgrind.plugin.out"));
        assert_eq!(base, Path::new("target/x/callgrind.plugin.out"));
        assert_eq!(one, Path::new("target/x/callgrind.plugin.out.1"));
        assert_eq!(two, Path::new("target/x/callgrind.plugin.out.2"));
    }
}
