//! A scenario's process: started with its log redirected to a file, measured through
//! `/proc/<pid>` (CPU time of all its threads, peak resident set), stopped with SIGTERM.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running scenario process.
pub struct StageProcess {
    child: Child,
    log: PathBuf,
}

/// CPU and memory of a process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system CPU seconds so far.
    pub cpu_seconds: f64,
    /// Peak resident set size so far (VmHWM), bytes.
    pub peak_rss_bytes: u64,
}

impl StageProcess {
    /// Starts `command`, stdout and stderr to `log`.
    pub fn start(mut command: Command, log: &Path) -> Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        Ok(StageProcess {
            child,
            log: log.to_path_buf(),
        })
    }

    /// Fails if the process has exited (a stage runs until stopped).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the process exited early ({status}); see {}",
                self.log.display()
            );
        }
        Ok(())
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// CPU time and peak RSS so far.
    pub fn usage(&self) -> Result<Usage> {
        let pid = self.child.id();
        Ok(Usage {
            cpu_seconds: cpu_seconds(pid)?,
            peak_rss_bytes: peak_rss_bytes(pid)?,
        })
    }

    /// Sends SIGTERM and waits up to `grace` for a clean exit, then kills.
    pub fn stop(self, grace: Duration) -> Result<()> {
        self.terminate();
        self.wait_or_kill(grace)
    }

    /// Sends SIGTERM, once: a stage takes a second one as "stop now, without draining".
    fn terminate(&self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: `pid` is our own child, not yet reaped (we hold its `Child`).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }

    /// Waits up to `grace` for the process to exit after [`StageProcess::terminate`], then
    /// kills it.
    fn wait_or_kill(mut self, grace: Duration) -> Result<()> {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(log = %self.log.display(), "process did not stop in time; killing it");
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// What a throughput measurement watches: one process, or several that share the work.
pub trait Measured {
    /// Fails if a process has exited.
    fn check_running(&mut self) -> Result<()>;
    /// CPU seconds summed over the processes; the largest peak RSS of any one of them.
    fn usage(&self) -> Result<Usage>;
}

impl Measured for StageProcess {
    fn check_running(&mut self) -> Result<()> {
        StageProcess::check_running(self)
    }

    fn usage(&self) -> Result<Usage> {
        StageProcess::usage(self)
    }
}

/// Several processes measured as one: replicas of a stage in one consumer group.
pub struct ProcessSet(pub Vec<StageProcess>);

impl Measured for ProcessSet {
    fn check_running(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(StageProcess::check_running)
    }

    fn usage(&self) -> Result<Usage> {
        let each = self.usage_each()?;
        Ok(Usage {
            cpu_seconds: each.iter().map(|u| u.cpu_seconds).sum(),
            peak_rss_bytes: each.iter().map(|u| u.peak_rss_bytes).max().unwrap_or(0),
        })
    }
}

impl ProcessSet {
    /// CPU time and peak RSS of each process, in start order.
    pub fn usage_each(&self) -> Result<Vec<Usage>> {
        self.0.iter().map(StageProcess::usage).collect()
    }

    /// Stops every process (SIGTERM to all first, so they leave the group together).
    pub fn stop(self, grace: Duration) -> Result<()> {
        self.0.iter().for_each(StageProcess::terminate);
        let mut first_error = None;
        for p in self.0 {
            if let Err(e) = p.wait_or_kill(grace) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// utime + stime of `pid` (fields 14 and 15 of /proc/<pid>/stat), in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; fields after it start past the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let ticks: u64 = fields[14 - 3].parse::<u64>()? + fields[15 - 3].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / per_second)
}

/// VmHWM of `pid`, bytes.
fn peak_rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc status")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("unreadable VmHWM")?
        .parse()?;
    Ok(kb * 1024)
}
