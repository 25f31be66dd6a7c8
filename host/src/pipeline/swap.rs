//! Hot swap of one stage to a new library (or config) without losing a record.
//!
//! A library is never replaced inside a running process (abi_stable never unloads one, and a
//! Rust cdylib cannot be unloaded safely), so a swap is a hand-over between processes:
//!
//! 1. Check the new library while the old processes keep serving: `stage-host inspect --json`
//!    (loads it: abi_stable's layout check and the plugin-API version) and `stage-host
//!    --dry-run` with the stage's arguments (constructs it with its config and asks the
//!    Schema Registry whether its output schema is compatible). A failure ends the swap here.
//! 2. Start the new processes in the stage's consumer group and wait until each has joined.
//!    The group rebalances: the new processes take some partitions from the old ones.
//! 3. Probation with both running: a new process that exits or fails a record is stopped,
//!    and the old ones take its partitions back. Nothing it failed on was committed.
//! 4. Drain the old processes (SIGTERM: finish the batch, flush, commit, leave the group);
//!    the new ones take every partition.
//! 5. Probation again; a failure now restarts the old library and stops the new one.
//!
//! Sources have no consumer group and two copies would emit twice, so a source is stopped
//! before its new process starts (steps 2-3 are skipped), and restarted on failure. The new
//! process resumes from the old one's last checkpoint (both use the replica's transactional
//! id, the checkpoints' key), so a swap is a hand-over only if both versions keep
//! checkpoints; otherwise the new one would send every record again, and the swap is refused
//! unless the operator asks for a restart of the source (`--restart-source`).

use super::control::Outcome;
use super::file::StageDef;
use super::supervisor::{Proc, ProcState, Role, Supervisor};
use plugin_host::{StageKind, StageSpec};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the library checks may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

impl Supervisor {
    /// `pipeline swap <stage> <plugin>`: the current definition with another library and,
    /// optionally, another config.
    pub(super) fn swap_request(
        &mut self,
        stage: &str,
        plugin: PathBuf,
        config: Option<Value>,
        restart_source: bool,
    ) -> Outcome {
        let Some(index) = self.stages.iter().position(|s| s.name == stage) else {
            let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
            return Outcome::refused(format!(
                "no stage {stage} in this pipeline (stages: {})",
                names.join(", ")
            ));
        };
        let mut def = self.stages[index].clone();
        def.plugin = std::path::absolute(&plugin).unwrap_or(plugin);
        if let Some(config) = config {
            def.config = config;
        }
        self.swap_to(index, def, restart_source)
    }

    /// Swaps stage `index` to `new`; on any failure the old definition keeps (or goes back
    /// to) serving. A source that cannot resume is swapped only with `restart_source`.
    pub(super) fn swap_to(&mut self, index: usize, new: StageDef, restart_source: bool) -> Outcome {
        let old = self.stages[index].clone();
        let stage = old.name.clone();
        if new == old {
            return Outcome {
                ok: true,
                stage: Some(stage),
                changed: Some(false),
                ..Outcome::default()
            };
        }
        let started = Instant::now();
        tracing::info!(stage = %stage, from = %old.plugin.display(), to = %new.plugin.display(), "swap: checking the new library");
        let checked = match self.check_library(index, &old, &new, restart_source) {
            Ok(checked) => checked,
            Err(reason) => {
                tracing::error!(stage = %stage, reason = %reason, "swap refused; the old library keeps serving");
                return Outcome {
                    stage: Some(stage),
                    rolled_back: Some(true),
                    phase: Some("check".into()),
                    reason: Some(reason),
                    ..Outcome::default()
                };
            }
        };
        let old_ids: Vec<u64> = self
            .procs
            .iter()
            .filter(|p| p.stage == index && p.role == Role::Serving)
            .map(|p| p.id)
            .collect();
        let is_source = checked.kind == StageKind::Source;
        if is_source {
            self.retire(&old_ids);
        }
        // A source's old processes are gone by now, and its checkpoints are keyed by its
        // transactional id: the new one takes the same ids, to resume where the old one stood.
        let serving_ids = self.id_sets[index];
        let new_id_set = if is_source {
            serving_ids
        } else {
            serving_ids.other()
        };
        tracing::info!(stage = %stage, replicas = new.replicas, "swap: starting the new processes");
        let new_ids: Vec<u64> = (0..new.replicas)
            .map(|replica| self.spawn(index, replica, new.clone(), Role::Candidate, new_id_set))
            .collect();
        let probation = Duration::from_secs_f64(self.pipeline.swap.probation_secs);
        let join_timeout = Duration::from_secs(self.pipeline.swap.join_timeout_secs);
        let mut phase = "join";
        let joined: fn(&Proc) -> bool = if is_source {
            |p| p.state == ProcState::Ready
        } else {
            |p| p.joined
        };
        let mut outcome = self.watch(&new_ids, join_timeout, Some(joined));
        if outcome.is_ok() && !is_source {
            phase = "probation";
            outcome = self.watch(&new_ids, probation, None);
            if outcome.is_ok() {
                tracing::info!(stage = %stage, "swap: draining the old processes");
                self.retire(&old_ids);
                phase = "after hand-over";
            }
        }
        if outcome.is_ok() {
            outcome = self.watch(&new_ids, probation, None);
        }
        if let Err(reason) = outcome {
            tracing::error!(stage = %stage, phase, reason = %reason, "swap failed; rolling back to the old library");
            let old_running = self.procs.iter().any(|p| old_ids.contains(&p.id));
            self.terminate(&new_ids);
            if !old_running {
                for replica in 0..old.replicas {
                    self.spawn(index, replica, old.clone(), Role::Serving, serving_ids);
                }
            }
            return Outcome {
                stage: Some(stage),
                rolled_back: Some(true),
                phase: Some(phase.into()),
                reason: Some(reason),
                serving: Some(old.plugin),
                ..Outcome::default()
            };
        }
        for proc in self.procs.iter_mut().filter(|p| new_ids.contains(&p.id)) {
            proc.role = Role::Serving;
        }
        self.id_sets[index] = new_id_set;
        self.stages[index] = new.clone();
        let elapsed = started.elapsed().as_secs_f64();
        tracing::info!(stage = %stage, plugin = %new.plugin.display(), version = %checked.version, seconds = elapsed, "swap done");
        Outcome {
            ok: true,
            stage: Some(stage),
            changed: Some(true),
            from: Some(old.plugin),
            to: Some(new.plugin),
            version: Some(checked.version),
            seconds: Some(elapsed),
            ..Outcome::default()
        }
    }

    /// Drains the processes `ids` (they commit and leave their group) and forgets them.
    fn retire(&mut self, ids: &[u64]) {
        for proc in self.procs.iter_mut().filter(|p| ids.contains(&p.id)) {
            proc.role = Role::Retiring;
        }
        self.terminate(ids);
    }

    /// Watches the new processes `ids` for `timeout`, failing as soon as one of them fails
    /// (or a stop is requested). With `until`, returns once every process satisfies it and
    /// fails if that has not happened by the timeout; without, surviving is passing.
    fn watch(
        &mut self,
        ids: &[u64],
        timeout: Duration,
        until: Option<fn(&Proc) -> bool>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let procs: Vec<&Proc> = self.procs.iter().filter(|p| ids.contains(&p.id)).collect();
            if let Some(reason) = procs.iter().find_map(|p| {
                p.failure()
                    .map(|why| format!("new process (pid {}) failed: {why}", p.pid.unwrap_or(0)))
            }) {
                return Err(reason);
            }
            if procs.len() < ids.len() {
                return Err("a new process disappeared".into());
            }
            if let Some(until) = until {
                if procs.iter().all(|p| until(p)) {
                    return Ok(());
                }
            }
            if self.stop_requested() {
                return Err("the pipeline is stopping".into());
            }
            if Instant::now() >= deadline {
                return match until {
                    None => Ok(()),
                    Some(_) => Err(format!(
                        "a new process did not become ready and join its group within {} s",
                        timeout.as_secs()
                    )),
                };
            }
            self.pump(Duration::from_millis(50));
        }
    }

    /// Loads and dry-runs the new library in separate processes, so the supervisor never
    /// maps a plugin, and for a source checks that the swap is a hand-over (unless
    /// `restart_source`). Returns `inspect --json`'s output.
    fn check_library(
        &mut self,
        index: usize,
        old: &StageDef,
        new: &StageDef,
        restart_source: bool,
    ) -> Result<StageSpec, String> {
        let spec = self.inspect(&new.plugin, &new.config)?;
        let running_kind = self
            .procs
            .iter()
            .filter(|p| p.stage == index)
            .find_map(|p| p.plugin.as_ref().map(|(_, _, kind)| kind.clone()));
        if let Some(kind) = running_kind {
            let new_kind = match spec.kind {
                StageKind::Stage => "stage",
                StageKind::Source => "source",
            };
            if new_kind != kind {
                return Err(format!(
                    "{} is a {new_kind} plugin; stage {} runs a {kind}",
                    new.plugin.display(),
                    new.name
                ));
            }
        }
        let new_resumes = self.dry_run(new).map_err(|(e, _code)| e)?;
        if spec.kind == StageKind::Source && !restart_source {
            let old_resumes = self.dry_run(old).map_err(|(e, _code)| e)?;
            if let Some(reason) = source_cannot_resume(&new.name, old_resumes, new_resumes) {
                return Err(reason);
            }
        }
        Ok(spec)
    }

    /// Runs `stage-host --dry-run` for `def` (constructs it, asks the registry about its
    /// schema); for a source, whether it keeps checkpoints. Fails as
    /// [`Self::run_check_with_code`] does.
    pub(super) fn dry_run(
        &mut self,
        def: &StageDef,
    ) -> Result<Option<bool>, (String, Option<i32>)> {
        let mut args = def.stage_host_args();
        args.push("--dry-run".into());
        let report = self.run_check_with_code(&args)?;
        let resumes = report
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<Value>(line).ok())
            .and_then(|report| report["resumes"].as_bool());
        Ok(resumes)
    }

    /// Loads `plugin` in a child process (`stage-host inspect --json`, which also applies the
    /// file checks), so the supervisor never maps a plugin, and returns what it declares.
    pub(super) fn inspect(
        &mut self,
        plugin: &std::path::Path,
        config: &serde_json::Value,
    ) -> Result<StageSpec, String> {
        let args = vec![
            "inspect".to_string(),
            "--json".to_string(),
            "--config-json".to_string(),
            config.to_string(),
            plugin.display().to_string(),
        ];
        let inspected = self.run_check(&args)?;
        serde_json::from_str(&inspected)
            .map_err(|e| format!("unreadable `stage-host inspect --json` output: {e}"))
    }

    /// Runs `stage-host <args>`, pumping events meanwhile; its stdout, or its last error line.
    pub(super) fn run_check(&mut self, args: &[String]) -> Result<String, String> {
        self.run_check_with_code(args)
            .map_err(|(message, _code)| message)
    }

    /// [`Self::run_check`], with the check's exit code on failure (`None` when it did not
    /// exit by itself: it timed out, could not start, or was killed by a signal).
    pub(super) fn run_check_with_code(
        &mut self,
        args: &[String],
    ) -> Result<String, (String, Option<i32>)> {
        let mut child = Command::new(&self.exe)
            .args(args)
            .env("STAGE_HOST_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| (format!("cannot run {}: {e}", self.exe.display()), None))?;
        let deadline = Instant::now() + CHECK_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => self.pump(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err((format!("`stage-host {}` timed out", args.join(" ")), None));
                }
            }
        };
        let output = child
            .wait_with_output()
            .map_err(|e| (format!("reading the check's output: {e}"), None))?;
        if status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        Err((
            format!(
                "`stage-host {}` failed ({}): {}",
                args.first().map(String::as_str).unwrap_or(""),
                super::supervisor::describe(status),
                last.trim()
            ),
            status.code(),
        ))
    }

    /// Re-reads the pipeline file and swaps every stage whose definition changed (a source that
    /// cannot resume only with `restart_source`).
    pub(super) fn reload(&mut self, restart_source: bool) -> Outcome {
        let file = match super::file::Pipeline::load(&self.pipeline.path) {
            Ok(file) => file,
            Err(e) => return Outcome::refused(e.to_string()),
        };
        let names = |stages: &[StageDef]| stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        if names(&file.stages) != names(&self.stages) {
            return Outcome::refused("reload changes stage definitions only; restart the pipeline to add, remove or reorder stages");
        }
        let mut results = Vec::new();
        let mut ok = true;
        for (index, def) in file.stages.into_iter().enumerate() {
            if def != self.stages[index] {
                let outcome = if only_replicas_differ(&self.stages[index], &def) {
                    self.scale(index, def)
                } else {
                    self.swap_to(index, def, restart_source)
                };
                ok &= outcome.ok;
                results.push(outcome);
            }
        }
        Outcome {
            ok,
            swaps: results,
            ..Outcome::default()
        }
    }

    /// Changes the replica count of stage `index` without a swap: added replicas join the
    /// group (the cooperative assignor moves only the partitions they take), removed ones
    /// drain (finish their batch, commit, leave) and are forgotten. A source runs as one
    /// process: two would emit the same records.
    fn scale(&mut self, index: usize, new: StageDef) -> Outcome {
        let old = self.stages[index].clone();
        let stage = old.name.clone();
        let is_source = self.procs.iter().filter(|p| p.stage == index).any(|p| {
            p.plugin
                .as_ref()
                .is_some_and(|(_, _, kind)| kind == "source")
        });
        if is_source && new.replicas > 1 {
            return Outcome {
                stage: Some(stage),
                reason: Some(
                    "a source stage runs one process; two would emit the same records".into(),
                ),
                ..Outcome::default()
            };
        }
        tracing::info!(stage = %stage, from = old.replicas, to = new.replicas, "scaling");
        let outcome = if new.replicas > old.replicas {
            let ids: Vec<u64> = (old.replicas..new.replicas)
                .map(|replica| {
                    let id_set = self.id_sets[index];
                    self.spawn(index, replica, new.clone(), Role::Serving, id_set)
                })
                .collect();
            let join_timeout = Duration::from_secs(self.pipeline.swap.join_timeout_secs);
            self.watch(&ids, join_timeout, Some(|p| p.joined))
        } else {
            let leaving: Vec<u64> = self
                .procs
                .iter()
                .filter(|p| p.stage == index && p.replica >= new.replicas)
                .map(|p| p.id)
                .collect();
            self.retire(&leaving);
            Ok(())
        };
        // Added replicas that failed to join keep being supervised like any replica.
        self.stages[index] = new;
        match outcome {
            Ok(()) => Outcome {
                ok: true,
                stage: Some(stage),
                changed: Some(true),
                ..Outcome::default()
            },
            Err(reason) => Outcome {
                stage: Some(stage),
                reason: Some(reason),
                ..Outcome::default()
            },
        }
    }
}

/// Why swapping source `stage` would not be a hand-over, in one line: the new process resumes
/// from the old one's checkpoint, so both versions must keep checkpoints (`resumes` from their
/// dry runs; unknown counts as not). `None`: it resumes.
fn source_cannot_resume(stage: &str, old: Option<bool>, new: Option<bool>) -> Option<String> {
    let which = match (old, new) {
        (Some(true), Some(true)) => return None,
        (Some(true), _) => "its new version keeps no checkpoint with this config",
        _ => "its running version keeps no checkpoint",
    };
    Some(format!(
        "stage {stage} is a source that cannot resume across a swap: {which} (SourceStage::checkpoint), so the new one would start over and send its records again; give --restart-source to swap anyway"
    ))
}

/// Whether two definitions of a stage differ in their replica count only.
fn only_replicas_differ(old: &StageDef, new: &StageDef) -> bool {
    old.replicas != new.replicas
        && &StageDef {
            replicas: new.replicas,
            ..old.clone()
        } == new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_handed_over_only_when_both_versions_keep_checkpoints() {
        assert_eq!(source_cannot_resume("one", Some(true), Some(true)), None);
        let old = source_cannot_resume("one", Some(false), Some(true)).expect("refused");
        assert!(
            old.starts_with("stage one is a source that cannot resume across a swap: its running version keeps no checkpoint"),
            "{old}"
        );
        assert!(
            old.ends_with("give --restart-source to swap anyway"),
            "{old}"
        );
        let new = source_cannot_resume("one", Some(true), Some(false)).expect("refused");
        assert!(
            new.contains("its new version keeps no checkpoint with this config"),
            "{new}"
        );
        assert!(
            source_cannot_resume("one", None, None).is_some(),
            "unknown is not resuming"
        );
        assert!(!old.contains('\n') && !new.contains('\n'), "one line");
    }
}
