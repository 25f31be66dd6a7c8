//! The control channel of a running pipeline: a Unix socket in the run directory that only
//! the owning user can reach (the run directory is 0700, the socket 0600, and each peer's uid
//! is checked with `SO_PEERCRED`).
//!
//! Protocol: the client writes one JSON request line, the supervisor answers with one JSON
//! line and closes. Requests: `{"cmd":"status"}`, `{"cmd":"swap","stage":S,"plugin":P,
//! "config":C?,"restart_source":B?}`, `{"cmd":"reload","restart_source":B?}`,
//! `{"cmd":"stop"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};

/// A request to the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Stages, processes and counters.
    Status,
    /// Hot-swap one stage to another library (and optionally another config).
    Swap {
        /// The stage's name in the pipeline file.
        stage: String,
        /// The new library.
        plugin: PathBuf,
        /// The new config; the current one when absent.
        config: Option<Value>,
        /// Swap a source that cannot resume anyway: its new version starts from its beginning.
        #[serde(default)]
        restart_source: bool,
    },
    /// Re-read the pipeline file and swap every stage whose library or config changed.
    Reload {
        /// As for `Swap`, for every source the reload swaps.
        #[serde(default)]
        restart_source: bool,
    },
    /// Stop the pipeline, source first.
    Stop,
}

/// The answer to a `swap`, `reload` or `stop` request (a `status` request is answered with a
/// [`super::snapshot::Snapshot`]). Fields that do not apply are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether it worked.
    pub ok: bool,
    /// Why not (a request the supervisor could not take).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The stage a swap concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Whether the swap changed anything (the same definition is not swapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
    /// Whether a failed swap went back to the old library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<bool>,
    /// Where a failed swap failed: `check`, `join`, `probation`, `after hand-over`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why a swap failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The library serving after a failed swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<PathBuf>,
    /// The libraries a swap went from and to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    /// See `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<PathBuf>,
    /// The new library's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How long the swap took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// A stop request was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<bool>,
    /// A reload's swaps, one per changed stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swaps: Vec<Outcome>,
}

impl Outcome {
    /// A refused request.
    pub fn refused(error: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            error: Some(error.into()),
            ..Outcome::default()
        }
    }

    /// As JSON, for the control channel.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an outcome serializes")
    }

    /// Why it failed, one line: its reason or error, or its swaps' reasons.
    pub fn failure(&self) -> String {
        self.reason
            .clone()
            .or_else(|| self.error.clone())
            .unwrap_or_else(|| {
                self.swaps
                    .iter()
                    .map(Outcome::failure)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
    }
}

/// A request with the way back to its client.
#[derive(Debug)]
pub struct Envelope {
    /// The request.
    pub request: Request,
    /// Where the answer goes.
    pub reply: Sender<Value>,
}

/// Binds the socket at `path` (the run directory must exist) and forwards each request to
/// `events` from a background thread.
pub fn serve<E: From<Envelope> + Send + 'static>(
    path: &Path,
    events: Sender<E>,
) -> std::io::Result<()> {
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let events = events.clone();
                // One thread per client: a swap may take a while, status must not wait on it.
                let _ = std::thread::Builder::new()
                    .name("control-client".into())
                    .spawn(move || {
                        if let Err(e) = answer(stream, &events) {
                            tracing::debug!(error = %e, "control client");
                        }
                    });
            }
        })?;
    Ok(())
}

fn answer<E: From<Envelope>>(stream: UnixStream, events: &Sender<E>) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    if !same_user(&stream) {
        writeln!(
            writer,
            r#"{{"ok":false,"error":"refused: not the owning user"}}"#
        )?;
        return Ok(());
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (tx, rx) = mpsc::channel();
            if events.send(Envelope { request, reply: tx }.into()).is_err() {
                Outcome::refused("the supervisor is stopping").to_json()
            } else {
                rx.recv()
                    .unwrap_or_else(|_| Outcome::refused("the supervisor is stopping").to_json())
            }
        }
        Err(e) => Outcome::refused(format!("bad request: {e}")).to_json(),
    };
    writeln!(writer, "{reply}")
}

/// Whether the peer runs as this process's user.
fn same_user(stream: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    // SAFETY: geteuid has no preconditions.
    rc == 0 && cred.uid == unsafe { libc::geteuid() }
}

/// Client side: sends `request` to the supervisor at `socket` and returns its answer.
pub fn request(socket: &Path, request: &Request) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    writeln!(stream, "{}", serde_json::to_string(request)?)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unreadable answer from the supervisor: {e}"),
        )
    })
}

/// Whether a supervisor answers on `socket`.
pub fn is_live(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}
