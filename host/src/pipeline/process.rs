//! Starting one stage process so that it can never be orphaned, and reading its status lines.
//!
//! Each child gets:
//! - its own process group, so a Ctrl-C at the terminal reaches only the supervisor, which
//!   then stops the stages in order (source first) instead of all at once;
//! - `PR_SET_PDEATHSIG(SIGTERM)`, so if the supervisor dies, even by SIGKILL, every child is
//!   told to drain and stop. The signal follows the *thread* that forked, so the supervisor
//!   spawns only from its main thread;
//! - the write end of a pipe as descriptor 3 (`--status-fd 3`), read here by one thread per
//!   child that forwards each status line ([`crate::status_report`]) to the supervisor.

use crate::status_report::StatusEvent;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;

/// The descriptor number a child writes status lines to.
pub const STATUS_FD: i32 = 3;

/// A status line from the process with supervisor id `.0`.
#[derive(Debug)]
pub struct StatusLine(pub u64, pub StatusEvent);

/// What to start.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `stage-host` binary.
    pub exe: PathBuf,
    /// Its arguments (see [`super::file::StageDef::stage_host_args`]).
    pub args: Vec<String>,
    /// Where its stdout and stderr go (appended).
    pub log: PathBuf,
}

/// Starts `launch`; status lines are sent to `events` tagged with `id`.
pub fn spawn<E: From<StatusLine> + Send + 'static>(
    launch: &Launch,
    id: u64,
    events: Sender<E>,
) -> std::io::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)?;
    let (reader, writer) = std::io::pipe()?;
    let writer_fd = writer.as_raw_fd();
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let supervisor_pid = unsafe { libc::getpid() };
    let mut command = Command::new(&launch.exe);
    command
        .args(&launch.args)
        .arg("--status-fd")
        .arg(STATUS_FD.to_string())
        .env_remove("STAGE_HOST_STATUS_FD")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (setpgid, prctl, getppid, kill, getpid, dup2, fcntl); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor may have died before prctl took effect.
            if libc::getppid() != supervisor_pid {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
            if writer_fd == STATUS_FD {
                // dup2 onto itself would keep close-on-exec set.
                if libc::fcntl(STATUS_FD, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(writer_fd, STATUS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    // The child holds its copy; ours must close so the reader sees end-of-file at its exit.
    drop(writer);
    std::thread::Builder::new()
        .name(format!("status-{id}"))
        .spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<StatusEvent>(&line) {
                    Ok(event) => {
                        if events.send(StatusLine(id, event).into()).is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::debug!(process = id, error = %e, "unreadable status line"),
                }
            }
        })?;
    Ok(child)
}

/// Sends `signal` to process `pid` (ignoring a process that is already gone).
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}
