//! The supervisor: one OS process per stage replica, started in file order (each stage once
//! the previous one is ready), restarted with exponential backoff when it crashes, and
//! stopped source first on SIGINT/SIGTERM, each stage draining before the next is told to.
//!
//! Everything happens on the main thread, driven by [`Supervisor::pump`]: status lines from
//! the children and requests from the control socket arrive on one channel, and child exits
//! are reaped with `try_wait`. Long operations (start-up, a swap, the ordered stop) call
//! `pump` while they wait, so status keeps answering and crashes keep being handled.

use super::control::{self, Envelope, Request};
use super::file::{MetricsPorts, Pipeline, StageDef};
use super::process::{self, Launch, StatusLine};
use super::restart::{AfterExit, Exit, RestartPolicy, CRASH_LOOP_CRASHES, CRASH_LOOP_WINDOW};
use super::snapshot::{ProcessSnapshot, Snapshot, StageSnapshot};
use super::PipelineError;
use crate::protocol::{Counters, FailureKind, StatusEvent};
use serde_json::Value;
use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one stage may take to drain on stop before it is killed.
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Something for the main thread.
#[derive(Debug)]
pub enum Event {
    /// A child's status line.
    Status(StatusLine),
    /// A control request.
    Control(Envelope),
}

impl From<StatusLine> for Event {
    fn from(line: StatusLine) -> Self {
        Event::Status(line)
    }
}

impl From<Envelope> for Event {
    fn from(envelope: Envelope) -> Self {
        Event::Control(envelope)
    }
}

pub use super::snapshot::{ProcState, Role};

/// One stage process (across its restarts).
#[derive(Debug)]
pub struct Proc {
    /// Id of the current incarnation; status lines carry it.
    pub id: u64,
    /// Index of its stage.
    pub stage: usize,
    /// Replica number within the stage.
    pub replica: u32,
    /// Why it exists.
    pub role: Role,
    /// What it runs.
    pub def: StageDef,
    /// sha256 of its library when started.
    pub sha256: String,
    /// The child, while it runs.
    pub child: Option<Child>,
    /// Its pid (the last one, once exited).
    pub pid: Option<u32>,
    /// Where it is.
    pub state: ProcState,
    /// Plugin name, version and kind, from its ready line.
    pub plugin: Option<(String, String, String)>,
    /// Whether it got a partition assignment since it started.
    pub joined: bool,
    /// Its latest counters.
    pub counters: Counters,
    /// Restarts so far.
    pub restarts: u32,
    /// How its last run ended.
    pub last_exit: Option<String>,
    /// The log file.
    pub log: PathBuf,
    /// The port it serves metrics on, kept across restarts.
    pub metrics_port: Option<u16>,
    /// Its producer's transactional id (used only with --exactly-once), kept across restarts.
    pub transactional_id: String,
    /// Why its last run failed, as it said in its `failed` status line.
    pub failure_reported: Option<(FailureKind, String)>,
    /// The last record it skipped or dead-lettered, as it said in a status line.
    pub record_failure: Option<String>,
    started_at: Instant,
    retry_at: Option<Instant>,
    restart: RestartPolicy,
    stop_requested: bool,
    exit_code: Option<i32>,
}

impl Proc {
    /// Whether a crash loop is going on: many crashes recently.
    pub fn crash_loop(&self) -> bool {
        self.restart.crash_loop(Instant::now())
    }

    /// Why its last run ended, as `exit code 5: <its failed line>`.
    fn exit_reason(&self) -> String {
        let how = self.last_exit.clone().unwrap_or_else(|| "exited".into());
        match &self.failure_reported {
            Some((_, reason)) => format!("{how}: {reason}"),
            None => how,
        }
    }

    /// Why the last run failed: what the process said, else what its exit code means.
    fn failure_kind(&self) -> Option<FailureKind> {
        self.failure_reported
            .as_ref()
            .map(|(kind, _)| *kind)
            .or_else(|| self.exit_code.and_then(FailureKind::from_exit_code))
    }

    /// Whether the process failed: exited when not told to, or its records failed.
    pub fn failure(&self) -> Option<String> {
        if self.child.is_none() && !self.stop_requested {
            return Some(self.exit_reason());
        }
        let c = self.counters;
        if c.skipped + c.dead_lettered > 0 {
            return Some(format!(
                "{} of its first {} records failed (skipped {}, dead-lettered {}){}",
                c.skipped + c.dead_lettered,
                c.records_in,
                c.skipped,
                c.dead_lettered,
                self.record_failure
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
        None
    }

    /// Seconds since the current incarnation started.
    pub fn uptime(&self) -> Duration {
        self.started_at.elapsed()
    }
}

/// A running pipeline.
/// Which of a stage's two sets of transactional ids a process uses (only with
/// `--exactly-once`).
///
/// An id is stable per replica and set, so a restarted process fences its crashed
/// predecessor and aborts the transaction it left open (instead of that transaction holding
/// back every `read_committed` reader until it times out). A swap runs the new version beside
/// the old one, replica for replica, so the new processes take the other set: with the old
/// one's ids they would fence the processes they are meant to relieve, and each restart of
/// one would fence the other in turn. The sets alternate with each swap. Zombies are still
/// fenced across sets: offsets are committed with the consumer group's generation, which a
/// process that lost its partitions no longer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSet {
    First,
    Second,
}

impl IdSet {
    /// The set a swap's new processes use.
    pub fn other(self) -> IdSet {
        match self {
            IdSet::First => IdSet::Second,
            IdSet::Second => IdSet::First,
        }
    }

    /// `<pipeline>.<stage>.<replica>` in the first set, with `.b` appended in the second.
    pub fn transactional_id(self, pipeline: &str, stage: &str, replica: u32) -> String {
        match self {
            IdSet::First => format!("{pipeline}.{stage}.{replica}"),
            IdSet::Second => format!("{pipeline}.{stage}.{replica}.b"),
        }
    }
}

pub struct Supervisor {
    pub(super) pipeline: Pipeline,
    pub(super) exe: PathBuf,
    /// Current definition of each stage (a swap changes it).
    pub(super) stages: Vec<StageDef>,
    pub(super) procs: Vec<Proc>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    next_id: u64,
    /// Per stage, the transactional id set its serving processes use (see [`IdSet`]).
    pub(super) id_sets: Vec<IdSet>,
    pub(super) stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    deferred: VecDeque<Envelope>,
    stopping: bool,
    /// Why the start failed, and the exit code of the stage process that failed it.
    start_failure: Option<(String, i32)>,
}

impl Supervisor {
    /// Prepares the run directory, the control socket and the signal handlers.
    pub fn new(pipeline: Pipeline) -> Result<Supervisor, PipelineError> {
        let io = |what: &str, e: std::io::Error| PipelineError::Io(format!("{what}: {e}"));
        let run_dir = &pipeline.run_dir;
        std::fs::create_dir_all(run_dir.join("logs"))
            .map_err(|e| io(&format!("creating {}", run_dir.display()), e))?;
        std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(&format!("restricting {}", run_dir.display()), e))?;
        let socket = pipeline.socket_path();
        if control::is_live(&socket) {
            return Err(PipelineError::AlreadyRunning(socket));
        }
        let _ = std::fs::remove_file(&socket);
        let exe = match &pipeline.stage_host {
            Some(path) => path.clone(),
            None => std::env::current_exe().map_err(|e| io("locating stage-host", e))?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .map_err(|e| io("installing signal handlers", e))?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
            .map_err(|e| io("installing signal handlers", e))?;
        let (tx, rx) = mpsc::channel();
        control::serve(&socket, tx.clone())
            .map_err(|e| io(&format!("binding {}", socket.display()), e))?;
        let _ = std::fs::write(
            run_dir.join("supervisor.pid"),
            std::process::id().to_string(),
        );
        Ok(Supervisor {
            stages: pipeline.stages.clone(),
            id_sets: vec![IdSet::First; pipeline.stages.len()],
            pipeline,
            exe,
            procs: Vec::new(),
            tx,
            rx,
            next_id: 1,
            stop,
            reload,
            deferred: VecDeque::new(),
            stopping: false,
            start_failure: None,
        })
    }

    /// Starts the stages, serves until a stop signal or request, then stops them in order.
    pub fn run(mut self) -> Result<(), PipelineError> {
        let started = self.preflight().and_then(|()| self.start_all());
        if started.is_ok() {
            tracing::info!(pipeline = %self.pipeline.name, socket = %self.pipeline.socket_path().display(), "pipeline running");
            self.serve();
        }
        self.stop_all();
        let _ = std::fs::remove_file(self.pipeline.socket_path());
        let _ = std::fs::remove_file(self.pipeline.run_dir.join("supervisor.pid"));
        if started.is_ok() {
            tracing::info!(pipeline = %self.pipeline.name, "pipeline stopped");
        }
        started
    }

    /// Before any process starts: every stage's library loads (checked in a child process by
    /// `stage-host inspect`, which also applies the file checks), every stage is constructed
    /// with its config and its output schemas checked against the registry (`stage-host
    /// --dry-run` with the arguments it will run with), and, with the topics the plugins
    /// declare filled in, the stages form no cycle. A pipeline whose third stage cannot start
    /// must not have started its source first.
    fn preflight(&mut self) -> Result<(), PipelineError> {
        let mut declared = Vec::new();
        for def in self.stages.clone() {
            let spec =
                self.inspect(&def.plugin, &def.config)
                    .map_err(|e| PipelineError::StartFailed {
                        reason: format!("stage {}: {e}", def.name),
                        code: crate::error::exit_code::BAD_PLUGIN,
                    })?;
            self.dry_run(&def)
                .map_err(|(e, code)| PipelineError::StartFailed {
                    reason: format!(
                        "stage {} failed to start, in its dry run before anything started: {e}",
                        def.name
                    ),
                    code: code
                        .filter(|&code| code != 0)
                        .unwrap_or(crate::error::exit_code::RUN_FAILED),
                })?;
            let input = def.input_topic.clone().or(spec.input_topic);
            let output = Some(def.output_topic.clone().unwrap_or(spec.output_topic.name));
            declared.push((def.name.clone(), input, output));
        }
        if !self.pipeline.allow_cycles {
            let flows: Vec<super::file::Flow<'_>> = declared
                .iter()
                .map(|(stage, input, output)| super::file::Flow {
                    stage,
                    input: input.as_deref(),
                    output: output.as_deref(),
                })
                .collect();
            if let Some(cycle) = super::file::find_cycle(&flows) {
                return Err(PipelineError::Usage(format!(
                    "pipeline file {}: {cycle}",
                    self.pipeline.path.display()
                )));
            }
        }
        Ok(())
    }

    fn start_all(&mut self) -> Result<(), PipelineError> {
        for index in 0..self.stages.len() {
            let def = self.stages[index].clone();
            tracing::info!(stage = %def.name, replicas = def.replicas, plugin = %def.plugin.display(), "starting stage");
            for replica in 0..def.replicas {
                self.spawn(index, replica, def.clone(), Role::Serving, IdSet::First);
            }
            self.wait_until(None, |s| {
                s.start_failure.is_some()
                    || s.procs
                        .iter()
                        .filter(|p| p.stage == index)
                        .all(|p| matches!(p.state, ProcState::Ready | ProcState::Finished))
            });
            if let Some((reason, code)) = self.start_failure.take() {
                return Err(PipelineError::StartFailed { reason, code });
            }
            if self.stop_requested() {
                return Ok(());
            }
            tracing::info!(stage = %def.name, "stage ready");
        }
        Ok(())
    }

    fn serve(&mut self) {
        while !self.stop_requested() {
            if self.reload.swap(false, Ordering::Relaxed) {
                let outcome = self.reload(false);
                tracing::info!(outcome = %outcome.to_json(), "reload (SIGHUP)");
            }
            if let Some(envelope) = self.deferred.pop_front() {
                let answer = match envelope.request {
                    Request::Status => self.snapshot_json(),
                    Request::Swap {
                        stage,
                        plugin,
                        config,
                        restart_source,
                    } => self
                        .swap_request(&stage, plugin, config, restart_source)
                        .to_json(),
                    Request::Reload { restart_source } => self.reload(restart_source).to_json(),
                    Request::Stop => {
                        self.stop.store(true, Ordering::Relaxed);
                        stopping()
                    }
                };
                let _ = envelope.reply.send(answer);
                continue;
            }
            self.pump(Duration::from_millis(200));
        }
    }

    /// Whether a stop was asked for (signal or control request).
    pub(super) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Stops every stage, source first: each stage drains and exits before the next one is
    /// told to, so downstream stages can still take what upstream flushed.
    fn stop_all(&mut self) {
        self.stopping = true;
        for index in 0..self.stages.len() {
            let ids: Vec<u64> = self
                .procs
                .iter()
                .filter(|p| p.stage == index)
                .map(|p| p.id)
                .collect();
            if !ids.is_empty() {
                tracing::info!(stage = %self.stages[index].name, "stopping stage");
            }
            self.terminate(&ids);
        }
        // Anything left (candidates of an interrupted swap).
        let ids: Vec<u64> = self.procs.iter().map(|p| p.id).collect();
        self.terminate(&ids);
    }

    /// SIGTERMs the processes `ids`, waits for them to drain and exit, kills stragglers.
    pub(super) fn terminate(&mut self, ids: &[u64]) {
        for proc in self.procs.iter_mut().filter(|p| ids.contains(&p.id)) {
            proc.stop_requested = true;
            proc.retry_at = None;
            match (&proc.child, proc.pid) {
                (Some(_), Some(pid)) => {
                    process::signal(pid, libc::SIGTERM);
                    proc.state = ProcState::Draining;
                }
                _ => proc.state = ProcState::Stopped,
            }
        }
        // Finished, crashed or backing-off processes have nothing to drain.
        self.procs
            .retain(|p| !(ids.contains(&p.id) && p.child.is_none()));
        let gone = |s: &Supervisor| !s.procs.iter().any(|p| ids.contains(&p.id));
        if !self.wait_until(Some(DRAIN_TIMEOUT), gone) {
            for proc in self.procs.iter().filter(|p| ids.contains(&p.id)) {
                if let Some(pid) = proc.pid {
                    tracing::error!(pid, stage = %proc.def.name, "did not stop within the drain timeout; killing it");
                    process::signal(pid, libc::SIGKILL);
                }
            }
            self.wait_until(Some(Duration::from_secs(10)), gone);
        }
    }

    /// Starts a process of stage `stage` running `def`. Returns its id.
    /// Starts replica `replica` of stage `stage` running `def`, with transactional ids from
    /// `id_set`.
    pub(super) fn spawn(
        &mut self,
        stage: usize,
        replica: u32,
        def: StageDef,
        role: Role,
        id_set: IdSet,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let log = self
            .pipeline
            .run_dir
            .join("logs")
            .join(format!("{}-{replica}.log", def.name));
        let metrics_port = self.pick_metrics_port(stage, replica, &def);
        let mut proc = Proc {
            id,
            stage,
            replica,
            role,
            sha256: String::new(),
            child: None,
            pid: None,
            state: ProcState::Starting,
            plugin: None,
            joined: false,
            counters: Counters::default(),
            restarts: 0,
            last_exit: None,
            log,
            metrics_port,
            transactional_id: id_set.transactional_id(&self.pipeline.name, &def.name, replica),
            started_at: Instant::now(),
            retry_at: None,
            restart: RestartPolicy::default(),
            failure_reported: None,
            record_failure: None,
            stop_requested: false,
            exit_code: None,
            def,
        };
        self.launch(&mut proc);
        self.procs.push(proc);
        id
    }

    /// The metrics port of a new process of replica `replica` of stage `stage` running `def`:
    /// the replica's first port, or its second while another process (the one a swap
    /// replaces) holds the first. See the scheme in [`super::file`].
    fn pick_metrics_port(&self, stage: usize, replica: u32, def: &StageDef) -> Option<u16> {
        let mut stages = self.stages.clone();
        stages[stage] = def.clone();
        let base = self.pipeline.metrics.stage_base(&stages, stage)?;
        let ports = MetricsPorts::replica_ports(base, replica);
        let taken = |port: u16| self.procs.iter().any(|p| p.metrics_port == Some(port));
        let port = ports.into_iter().find(|&port| !taken(port));
        if port.is_none() {
            tracing::warn!(stage = %def.name, replica, ports = ?ports, "both metrics ports of the replica are in use; starting it without metrics");
        }
        port
    }

    /// (Re)starts `proc`'s child with a fresh incarnation id.
    fn launch(&mut self, proc: &mut Proc) {
        proc.sha256 = crate::trust::sha256_of(&proc.def.plugin)
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        proc.started_at = Instant::now();
        proc.state = ProcState::Starting;
        proc.joined = false;
        proc.counters = Counters::default();
        proc.plugin = None;
        proc.exit_code = None;
        proc.failure_reported = None;
        proc.record_failure = None;
        let mut args = proc.def.stage_host_args();
        // Outputs name their inputs, so a canary can compare versions (a source has none).
        if !proc.def.args.iter().any(|a| a == "--position-headers") {
            args.push("--position-headers".into());
        }
        args.push("--transactional-id".into());
        args.push(proc.transactional_id.clone());
        if let Some(port) = proc.metrics_port {
            args.push("--metrics-addr".into());
            args.push(self.metrics_addr(port));
        }
        let launch = Launch {
            exe: self.exe.clone(),
            args,
            log: proc.log.clone(),
        };
        match process::spawn(&launch, proc.id, self.tx.clone()) {
            Ok(child) => {
                proc.pid = Some(child.id());
                proc.child = Some(child);
                tracing::info!(stage = %proc.def.name, replica = proc.replica, pid = proc.pid, role = ?proc.role, "process started");
            }
            Err(e) => {
                proc.last_exit = Some(format!("could not start: {e}"));
                tracing::error!(stage = %proc.def.name, error = %e, "could not start a stage process");
                // Spawning may work again (a full process table, a moment without memory).
                let exit = Exit {
                    success: false,
                    stop_requested: false,
                    kind: None,
                    uptime: Duration::ZERO,
                    was_ready: false,
                    stage_starting: false,
                    serving: true,
                    pipeline_stopping: self.stopping,
                };
                if let AfterExit::Restart { after, .. } =
                    proc.restart.after_exit(exit, Instant::now())
                {
                    proc.retry_at = Some(Instant::now() + after);
                    proc.state = ProcState::BackingOff;
                }
            }
        }
    }

    /// `host:port` for `port` on the pipeline's metrics host (IPv6 hosts bracketed).
    fn metrics_addr(&self, port: u16) -> String {
        let host = &self.pipeline.metrics.host;
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// Handles events for up to `timeout`, reaps exited children, restarts due ones.
    pub(super) fn pump(&mut self, timeout: Duration) {
        match self.rx.recv_timeout(timeout) {
            Ok(event) => {
                self.handle(event);
                while let Ok(event) = self.rx.try_recv() {
                    self.handle(event);
                }
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
        self.reap();
        self.restart_due();
    }

    /// Pumps until `done` holds, a stop is requested, or `timeout` passes. Returns `done`.
    pub(super) fn wait_until(
        &mut self,
        timeout: Option<Duration>,
        done: impl Fn(&Supervisor) -> bool,
    ) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if done(self) {
                return true;
            }
            if (self.stop_requested() && !self.stopping)
                || deadline.is_some_and(|d| Instant::now() >= d)
            {
                return false;
            }
            self.pump(Duration::from_millis(50));
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Status(StatusLine(id, event)) => {
                let Some(proc) = self.procs.iter_mut().find(|p| p.id == id) else {
                    return;
                };
                match event {
                    StatusEvent::Ready {
                        stage,
                        version,
                        kind,
                    } => {
                        if proc.state == ProcState::Starting {
                            proc.state = ProcState::Ready;
                        }
                        proc.plugin = Some((stage, version, kind));
                    }
                    StatusEvent::Joined { .. } => proc.joined = true,
                    StatusEvent::Counters(counters) => proc.counters = counters,
                    StatusEvent::RecordFailed { reason } => proc.record_failure = Some(reason),
                    StatusEvent::Failed { kind, reason } => {
                        proc.failure_reported = Some((kind, reason))
                    }
                    StatusEvent::Draining => proc.state = ProcState::Draining,
                }
            }
            Event::Control(envelope) => match envelope.request {
                // Status is read-only: answered at once, even in the middle of a swap.
                Request::Status => {
                    let _ = envelope.reply.send(self.snapshot_json());
                }
                // A stop is answered at once too: a start that cannot finish (a stage in a
                // restart loop) must not keep `pipeline stop` waiting.
                Request::Stop => {
                    self.stop.store(true, Ordering::Relaxed);
                    let _ = envelope.reply.send(stopping());
                }
                _ => self.deferred.push_back(envelope),
            },
        }
    }

    /// Collects exited children and decides what each exit means.
    fn reap(&mut self) {
        let mut index = 0;
        while index < self.procs.len() {
            let exited = match self.procs[index].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "waiting for a stage process");
                    None
                }
                _ => None,
            };
            let Some(status) = exited else {
                index += 1;
                continue;
            };
            let mut proc = self.procs.remove(index);
            proc.child = None;
            proc.exit_code = status.code();
            proc.last_exit = Some(describe(status));
            let keep = self.after_exit(&mut proc, status);
            if keep {
                self.procs.insert(index, proc);
                index += 1;
            }
        }
    }

    /// Returns whether to keep tracking the process.
    fn after_exit(&mut self, proc: &mut Proc, status: ExitStatus) -> bool {
        let name = proc.def.name.clone();
        let exit = Exit {
            success: status.success(),
            stop_requested: proc.stop_requested,
            kind: proc.failure_kind(),
            uptime: proc.uptime(),
            was_ready: proc.state != ProcState::Starting,
            stage_starting: self.is_starting(proc.stage)
                && !self
                    .procs
                    .iter()
                    .any(|p| p.stage == proc.stage && p.state == ProcState::Ready),
            serving: proc.role == Role::Serving,
            pipeline_stopping: self.stopping,
        };
        match proc.restart.after_exit(exit, Instant::now()) {
            AfterExit::Stopped => {
                tracing::info!(stage = %name, replica = proc.replica, pid = proc.pid, exit = %describe(status), "process stopped");
                proc.state = ProcState::Stopped;
                return false;
            }
            AfterExit::Finished => {
                tracing::info!(stage = %name, replica = proc.replica, "process finished");
                proc.state = ProcState::Finished;
                return true;
            }
            AfterExit::FailStart => {
                tracing::warn!(stage = %name, replica = proc.replica, pid = proc.pid, exit = %proc.exit_reason(), "process failed to start");
                if self.start_failure.is_none() {
                    // A bad file or library, or the cluster's refusal (an incompatible
                    // schema, an ACL), at start-up: a restart will not fix it.
                    self.start_failure = Some((
                        format!("stage {name} failed to start ({})", proc.exit_reason()),
                        status.code().unwrap_or(crate::error::exit_code::BAD_PLUGIN),
                    ));
                }
                proc.state = ProcState::Crashed;
            }
            AfterExit::LeaveCrashed => {
                tracing::warn!(stage = %name, replica = proc.replica, pid = proc.pid, exit = %proc.exit_reason(), "process crashed");
                proc.state = ProcState::Crashed;
            }
            AfterExit::Restart { after, crash_loop } => {
                tracing::warn!(stage = %name, replica = proc.replica, pid = proc.pid, exit = %proc.exit_reason(), "process crashed");
                proc.retry_at = Some(Instant::now() + after);
                proc.state = ProcState::BackingOff;
                if crash_loop {
                    tracing::error!(
                        stage = %name,
                        replica = proc.replica,
                        crashes = CRASH_LOOP_CRASHES,
                        within_secs = CRASH_LOOP_WINDOW.as_secs(),
                        retry_in_ms = after.as_millis() as u64,
                        "crash loop: {}", proc.exit_reason()
                    );
                } else {
                    tracing::info!(stage = %name, replica = proc.replica, retry_in_ms = after.as_millis() as u64, "restarting after backoff");
                }
            }
        }
        true
    }

    /// Whether the pipeline is still starting stage `stage` (no later stage has processes).
    fn is_starting(&self, stage: usize) -> bool {
        !self.procs.iter().any(|p| p.stage > stage)
    }

    fn restart_due(&mut self) {
        if self.stopping || self.stop_requested() {
            return;
        }
        let now = Instant::now();
        for index in 0..self.procs.len() {
            let due = {
                let p = &self.procs[index];
                p.state == ProcState::BackingOff && p.retry_at.is_some_and(|t| t <= now)
            };
            if due {
                let mut proc = self.procs.remove(index);
                proc.retry_at = None;
                proc.restarts += 1;
                // A fresh incarnation id, so late lines from the old one are ignored.
                proc.id = self.next_id;
                self.next_id += 1;
                self.launch(&mut proc);
                self.procs.insert(index, proc);
            }
        }
    }

    /// The state of every stage and process, as `pipeline status` shows it.
    fn snapshot_json(&self) -> Value {
        serde_json::to_value(self.snapshot()).expect("a snapshot serializes")
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        let stages = self
            .stages
            .iter()
            .enumerate()
            .map(|(index, def)| StageSnapshot {
                name: def.name.clone(),
                plugin: def.plugin.clone(),
                config: def.config.clone(),
                replicas: def.replicas,
                processes: self
                    .procs
                    .iter()
                    .filter(|p| p.stage == index)
                    .map(|p| {
                        let (plugin_name, version, kind) = p.plugin.clone().unwrap_or_default();
                        ProcessSnapshot {
                            replica: p.replica,
                            pid: p.pid,
                            role: p.role,
                            state: p.state,
                            crash_loop: p.crash_loop(),
                            plugin: p.def.plugin.clone(),
                            plugin_name,
                            version,
                            kind,
                            sha256: p.sha256.clone(),
                            joined: p.joined,
                            counters: p.counters,
                            metrics_addr: p.metrics_port.map(|port| self.metrics_addr(port)),
                            restarts: p.restarts,
                            last_exit: (p.child.is_none() && p.last_exit.is_some())
                                .then(|| p.exit_reason())
                                .or_else(|| p.last_exit.clone()),
                            uptime_secs: p.uptime().as_secs(),
                        }
                    })
                    .collect(),
            })
            .collect();
        Snapshot {
            ok: true,
            pipeline: self.pipeline.name.clone(),
            file: self.pipeline.path.clone(),
            supervisor_pid: std::process::id(),
            stages,
        }
    }
}

/// The answer to a stop request.
fn stopping() -> Value {
    super::control::Outcome {
        ok: true,
        stopping: Some(true),
        ..Default::default()
    }
    .to_json()
}

/// "exit code 3" or "killed by signal 9".
pub(super) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}
