//! The pipeline file: which stages, in which order, with which library and config.
//!
//! ```toml
//! [pipeline]
//! name = "example"            # names the run directory
//! # run_dir = "/run/example"  # default: .run/<name> beside this file
//! metrics_port = 9300         # optional: each process serves /metrics and /health/* (below)
//! # metrics_host = "0.0.0.0"  # default 127.0.0.1
//! # max_replicas = 64         # the most processes one stage may ask for
//! # allow_cycles = false      # a stage reading what a later stage writes is refused
//! # replication_factor = 3    # replicas of the topics stages create (default: each plugin's)
//!
//! [[stage]]                   # stages start in file order, source first
//! name = "one"
//! plugin = "../target/debug/libstage_one.so"   # relative to this file
//! config = { records = 100, rate_per_second = 50 }
//!
//! [[stage]]
//! name = "two"
//! plugin = "../target/debug/libstage_two.so"
//! replicas = 2                # processes sharing the stage's consumer group
//! on_error = "dead-letter"    # fail | skip | dead-letter
//! input_topic = "in"          # optional overrides of the plugin's topics and group
//! output_topic = "out"
//! group_id = "g"
//! args = ["--batch-size", "500"]   # any further stage-host flags
//! # metrics_port = 9400       # this stage's own base port instead of the pipeline's scheme
//! # replication_factor = 2    # this stage's, instead of the pipeline's
//! ```
//!
//! Replication: a stage creates its output topic (and dead-letter or checkpoint topic) with
//! its `replication_factor`, or else the pipeline's, or else the one its plugin declares (the
//! example plugins say 1, which a cluster with `min.insync.replicas=2` refuses to write to
//! with `acks=all`; the stage says so at start-up). It reaches the stage as
//! `--replication-factor`.
//!
//! Metrics ports: each stage has a fixed block of [`METRICS_BLOCK`] ports (32) starting at its
//! base, whatever its replica count, so scaling a stage by `reload` never moves a port or grows
//! into the next stage's block. Replica `r` serves on `base + r`; a process swapped in next to
//! it (during a hot swap both run) takes `base + 16 + r` when its predecessor holds the first.
//! So after swaps a replica may sit on either port: scrape the whole block. A stage's base is
//! its own `metrics_port`, or else the pipeline's `metrics_port` plus 32 for each stage before
//! it (9300-9331, 9332-9363, and so on). A stage that serves metrics has at most
//! [`METRICS_REPLICAS`] (16) replicas; more are refused when the file is read (also on reload).
//! Without either port, the stage serves no metrics.

use crate::policy::ErrorPolicy;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A pipeline file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not readable.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or not a pipeline.
    #[error("pipeline file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in one line.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pipeline: RawPipeline,
    #[serde(rename = "stage", default)]
    stages: Vec<StageDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: String,
    run_dir: Option<PathBuf>,
    stage_host: Option<PathBuf>,
    #[serde(default)]
    swap: SwapSettings,
    metrics_port: Option<u16>,
    metrics_host: Option<String>,
    #[serde(default = "default_max_replicas")]
    max_replicas: u32,
    #[serde(default)]
    allow_cycles: bool,
    replication_factor: Option<i16>,
}

/// The most replicas a stage may have unless `[pipeline] max_replicas` says otherwise: each is
/// a process (with its own Kafka clients), and more than the input's partitions sit idle.
pub const DEFAULT_MAX_REPLICAS: u32 = 64;

fn default_max_replicas() -> u32 {
    DEFAULT_MAX_REPLICAS
}

/// How a hot swap judges a new library.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwapSettings {
    /// Seconds a new process must run, after joining its group, without failing before the
    /// old one is drained; and again after the old one is gone.
    pub probation_secs: f64,
    /// Seconds a new process may take to become ready and join its group.
    pub join_timeout_secs: u64,
}

impl Default for SwapSettings {
    fn default() -> Self {
        SwapSettings {
            probation_secs: 3.0,
            join_timeout_secs: 60,
        }
    }
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    /// The stage's name in this pipeline (used by `swap`, `status` and log file names).
    pub name: String,
    /// The plugin library.
    pub plugin: PathBuf,
    /// The stage config passed as `--config-json`.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Processes of this stage; they share its consumer group.
    #[serde(default = "one")]
    pub replicas: u32,
    /// What a stage does with a failing record.
    #[serde(default)]
    pub on_error: ErrorPolicy,
    /// Overrides the plugin's input topic.
    pub input_topic: Option<String>,
    /// Overrides the plugin's output topic.
    pub output_topic: Option<String>,
    /// Overrides the plugin's consumer group.
    pub group_id: Option<String>,
    /// Further `stage-host` flags.
    #[serde(default)]
    pub args: Vec<String>,
    /// The first port of this stage's metrics block (see the module doc).
    pub metrics_port: Option<u16>,
    /// Replicas of the topics the stage creates; after parsing, the pipeline's when the stage
    /// gives none. `None`: the plugin's own.
    pub replication_factor: Option<i16>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

fn one() -> u32 {
    1
}

impl StageDef {
    /// The `stage-host` arguments that run this stage with `plugin` and `config`, the
    /// rest of the definition unchanged.
    pub fn stage_host_args(&self) -> Vec<String> {
        let mut args = vec![
            "--plugin".to_string(),
            self.plugin.display().to_string(),
            "--config-json".to_string(),
            self.config.to_string(),
            "--on-error".to_string(),
            clap::ValueEnum::to_possible_value(&self.on_error)
                .expect("every policy has a name")
                .get_name()
                .to_string(),
        ];
        for (flag, value) in [
            ("--input-topic", &self.input_topic),
            ("--output-topic", &self.output_topic),
            ("--group-id", &self.group_id),
        ] {
            if let Some(value) = value {
                args.push(flag.to_string());
                args.push(value.clone());
            }
        }
        if let Some(replicas) = self.replication_factor {
            args.push("--replication-factor".to_string());
            args.push(replicas.to_string());
        }
        args.extend(self.args.iter().cloned());
        args
    }
}

/// A parsed and checked pipeline file, with paths resolved.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it came from.
    pub path: PathBuf,
    /// The pipeline's name.
    pub name: String,
    /// Where the control socket, status and logs live.
    pub run_dir: PathBuf,
    /// The `stage-host` binary for the stage processes, if not this one.
    pub stage_host: Option<PathBuf>,
    /// Swap settings.
    pub swap: SwapSettings,
    /// Where stage processes serve metrics.
    pub metrics: MetricsPorts,
    /// Stages in start order.
    pub stages: Vec<StageDef>,
    /// Whether stages may form a cycle (`[pipeline] allow_cycles`).
    pub allow_cycles: bool,
}

/// The most replicas of a stage that serves metrics: its block has a first port for each and
/// a second one for the process a swap starts beside it.
pub const METRICS_REPLICAS: u32 = 16;

/// The ports of each stage's metrics block, fixed so that no replica count moves a block.
pub const METRICS_BLOCK: u32 = 2 * METRICS_REPLICAS;

/// The pipeline-wide metrics settings: the base port of the first stage's block and the host
/// every process listens on.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsPorts {
    /// Base port of the pipeline's scheme; `None`: only stages with their own port serve.
    pub base: Option<u16>,
    /// The address processes listen on.
    pub host: String,
}

impl MetricsPorts {
    /// The first port of the block of stage `index` among `stages`, if it serves metrics.
    pub fn stage_base(&self, stages: &[StageDef], index: usize) -> Option<u16> {
        self.block(stages, index)
            .and_then(|start| u16::try_from(start).ok())
    }

    /// The two ports of replica `replica` of a stage whose block starts at `base` (the second
    /// for a swapped-in process). They depend on nothing else, so they never move.
    pub fn replica_ports(base: u16, replica: u32) -> [u16; 2] {
        let first = u32::from(base) + replica;
        let second = first + METRICS_REPLICAS;
        [first, second].map(|p| u16::try_from(p).unwrap_or(u16::MAX))
    }

    /// The first port of the block of stage `index` (its size is always [`METRICS_BLOCK`]).
    fn block(&self, stages: &[StageDef], index: usize) -> Option<u32> {
        match (stages[index].metrics_port, self.base) {
            (Some(port), _) => Some(u32::from(port)),
            (None, Some(base)) => Some(u32::from(base) + METRICS_BLOCK * index as u32),
            (None, None) => None,
        }
    }

    /// Checks that every stage with metrics fits its block, every block fits below 65536,
    /// and no two overlap.
    fn check(&self, stages: &[StageDef]) -> Result<(), String> {
        let mut blocks: Vec<(u32, u32, &str)> = Vec::new();
        for (index, stage) in stages.iter().enumerate() {
            let Some(start) = self.block(stages, index) else {
                continue;
            };
            if stage.replicas > METRICS_REPLICAS {
                return Err(format!(
                    "stage {}: {} replicas do not fit its metrics block: a stage that serves metrics has at most {METRICS_REPLICAS} replicas ({METRICS_BLOCK} ports, a second one per replica for a swap)",
                    stage.name, stage.replicas
                ));
            }
            let end = start + METRICS_BLOCK;
            if start == 0 || end > 65536 {
                return Err(format!(
                    "stage {}: metrics ports {start}..{} are not valid ports",
                    stage.name,
                    end - 1
                ));
            }
            if let Some((_, _, other)) = blocks.iter().find(|(s, e, _)| start < *e && *s < end) {
                return Err(format!(
                    "stage {}: metrics ports {start}..{} overlap those of stage {other} (each stage takes {METRICS_BLOCK} ports)",
                    stage.name,
                    end - 1
                ));
            }
            blocks.push((start, end, &stage.name));
        }
        Ok(())
    }
}

impl Pipeline {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Pipeline, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Pipeline::parse(path, &text)
    }

    /// Parses `text` as if read from `path` (relative paths resolve against its directory).
    pub fn parse(path: &Path, text: &str) -> Result<Pipeline, FileError> {
        let invalid = |message: String| FileError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| invalid(e.message().replace('\n', " ")))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        check_name(&raw.pipeline.name).map_err(|e| invalid(format!("pipeline name: {e}")))?;
        if raw.stages.is_empty() {
            return Err(invalid("no [[stage]] given".into()));
        }
        let mut stages = raw.stages;
        for (i, stage) in stages.iter_mut().enumerate() {
            check_name(&stage.name).map_err(|e| invalid(format!("stage {}: name: {e}", i + 1)))?;
            if stage.replicas == 0 {
                return Err(invalid(format!(
                    "stage {}: replicas must be at least 1",
                    stage.name
                )));
            }
            if stage.replicas > raw.pipeline.max_replicas {
                return Err(invalid(format!(
                    "stage {}: {} replicas is more than max_replicas ({}); a stage needs no more replicas than its input topic has partitions (raise [pipeline] max_replicas if you mean it)",
                    stage.name, stage.replicas, raw.pipeline.max_replicas
                )));
            }
            if !stage.config.is_object() {
                return Err(invalid(format!(
                    "stage {}: config must be a table",
                    stage.name
                )));
            }
            stage.plugin = normalize(&base.join(&stage.plugin));
            stage.replication_factor = stage.replication_factor.or(raw.pipeline.replication_factor);
            check_replication(stage).map_err(|e| invalid(format!("stage {}: {e}", stage.name)))?;
        }
        for (i, stage) in stages.iter().enumerate() {
            if stages[..i].iter().any(|s| s.name == stage.name) {
                return Err(invalid(format!("stage name {} is used twice", stage.name)));
            }
        }
        let run_dir = match raw.pipeline.run_dir {
            Some(dir) => base.join(dir),
            None => base.join(".run").join(&raw.pipeline.name),
        };
        let metrics = MetricsPorts {
            base: raw.pipeline.metrics_port,
            host: raw
                .pipeline
                .metrics_host
                .unwrap_or_else(|| "127.0.0.1".to_string()),
        };
        metrics.check(&stages).map_err(invalid)?;
        if !raw.pipeline.allow_cycles {
            // The topics the file names; the supervisor checks again with the plugins' own.
            let flows: Vec<Flow<'_>> = stages
                .iter()
                .map(|s| Flow {
                    stage: &s.name,
                    input: s.input_topic.as_deref(),
                    output: s.output_topic.as_deref(),
                })
                .collect();
            if let Some(cycle) = find_cycle(&flows) {
                return Err(invalid(cycle));
            }
        }
        Ok(Pipeline {
            path: path.to_path_buf(),
            name: raw.pipeline.name,
            run_dir,
            stage_host: raw.pipeline.stage_host.map(|p| base.join(p)),
            swap: raw.pipeline.swap,
            metrics,
            stages,
            allow_cycles: raw.pipeline.allow_cycles,
        })
    }

    /// The control socket's path.
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir.join("control.sock")
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageDef> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Where one stage reads and writes, as far as known.
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    /// The stage's name.
    pub stage: &'a str,
    /// The topic it reads (`None`: a source, or not known).
    pub input: Option<&'a str>,
    /// The topic it writes (`None`: not known).
    pub output: Option<&'a str>,
}

/// A cycle among the stages (a stage reads what it, or a stage it feeds, writes), described
/// in one line naming the stages and topics; `None` if there is none. Records in a cycle are
/// processed again and again for ever.
pub fn find_cycle(flows: &[Flow<'_>]) -> Option<String> {
    // Stage i feeds stage j when i's output is j's input.
    let feeds = |i: usize, j: usize| flows[i].output.is_some() && flows[i].output == flows[j].input;
    // Depth-first search from each stage, following feeds, for a path back to it.
    for start in 0..flows.len() {
        let mut path = vec![start];
        let mut next = vec![0usize];
        while let Some(candidate) = next.last_mut() {
            let at = *path.last().expect("path and next grow together");
            if *candidate >= flows.len() {
                path.pop();
                next.pop();
                continue;
            }
            let j = *candidate;
            *candidate += 1;
            if !feeds(at, j) {
                continue;
            }
            if j == start {
                let steps: Vec<String> = path
                    .iter()
                    .map(|&i| {
                        format!(
                            "{} writes {}",
                            flows[i].stage,
                            flows[i].output.unwrap_or("?")
                        )
                    })
                    .collect();
                return Some(format!(
                    "stages form a cycle: {}, which {} reads; records would go round for ever (set allow_cycles = true in [pipeline] if that is meant)",
                    steps.join(", which "),
                    flows[start].stage
                ));
            }
            if !path.contains(&j) {
                path.push(j);
                next.push(0);
            }
        }
    }
    None
}

/// Removes `.` and `..` components without touching the file system (the library may not
/// exist yet, and a symlink's own path is what the user deployed).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A replication factor is at least 1, and given once: as `replication_factor`, or in `args`.
fn check_replication(stage: &StageDef) -> Result<(), String> {
    let Some(replicas) = stage.replication_factor else {
        return Ok(());
    };
    if replicas < 1 {
        return Err(format!(
            "replication_factor must be at least 1, not {replicas}"
        ));
    }
    let in_args = stage
        .args
        .iter()
        .any(|a| a == "--replication-factor" || a.starts_with("--replication-factor="));
    if in_args {
        return Err("--replication-factor in args and a replication_factor (the stage's or the pipeline's) are both given; keep one".into());
    }
    Ok(())
}

/// Names end up in file names: keep them to letters, digits, `-`, `_` and `.`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` must be non-empty letters, digits, `-`, `_` or `.`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [pipeline]
        name = "p"
        [[stage]]
        name = "one"
        plugin = "libone.so"
        config = { records = 5 }
        [[stage]]
        name = "two"
        plugin = "/abs/libtwo.so"
        replicas = 2
        on_error = "dead-letter"
        input_topic = "in"
        group_id = "g"
        args = ["--batch-size", "10"]
    "#;

    #[test]
    fn parses_and_resolves_paths() {
        let p = Pipeline::parse(Path::new("/etc/pipes/p.toml"), EXAMPLE).unwrap();
        let up = Pipeline::parse(
            Path::new("/etc/pipes/p.toml"),
            &EXAMPLE.replace("libone.so", "../lib/./libone.so"),
        )
        .unwrap();
        assert_eq!(up.stages[0].plugin, PathBuf::from("/etc/lib/libone.so"));
        assert_eq!(p.run_dir, PathBuf::from("/etc/pipes/.run/p"));
        assert_eq!(p.stages[0].plugin, PathBuf::from("/etc/pipes/libone.so"));
        assert_eq!(p.stages[1].plugin, PathBuf::from("/abs/libtwo.so"));
        assert_eq!(p.stages[1].replicas, 2);
        assert_eq!(
            p.stages[1].stage_host_args(),
            [
                "--plugin",
                "/abs/libtwo.so",
                "--config-json",
                "{}",
                "--on-error",
                "dead-letter",
                "--input-topic",
                "in",
                "--group-id",
                "g",
                "--batch-size",
                "10"
            ]
        );
        assert_eq!(p.stages[0].config, serde_json::json!({"records": 5}));
        assert_eq!(
            p.metrics.stage_base(&p.stages, 1),
            None,
            "no metrics by default"
        );
    }

    #[test]
    fn replication_factor_comes_from_the_stage_then_the_pipeline_then_the_plugin() {
        let flag = |p: &Pipeline, i: usize| {
            let args = p.stages[i].stage_host_args();
            args.iter()
                .position(|a| a == "--replication-factor")
                .map(|at| args[at + 1].clone())
        };
        let p = Pipeline::parse(Path::new("p.toml"), EXAMPLE).unwrap();
        assert_eq!(flag(&p, 0), None, "the plugin's own without either");

        let wide = EXAMPLE.replace("name = \"p\"", "name = \"p\"\nreplication_factor = 3");
        let p = Pipeline::parse(Path::new("p.toml"), &wide).unwrap();
        assert_eq!(flag(&p, 0).as_deref(), Some("3"));
        assert_eq!(flag(&p, 1).as_deref(), Some("3"));

        let own = wide.replace("replicas = 2", "replicas = 2\nreplication_factor = 2");
        let p = Pipeline::parse(Path::new("p.toml"), &own).unwrap();
        assert_eq!(flag(&p, 0).as_deref(), Some("3"), "the pipeline's");
        assert_eq!(flag(&p, 1).as_deref(), Some("2"), "the stage's wins");
        assert_eq!(p.stages[1].replication_factor, Some(2));
        let args = p.stages[1].stage_host_args();
        assert!(
            args.iter().position(|a| a == "--replication-factor")
                < args.iter().position(|a| a == "--batch-size"),
            "before the stage's own args: {args:?}"
        );
    }

    #[test]
    fn a_replication_factor_below_one_or_given_twice_is_refused() {
        let zero = EXAMPLE.replace("replicas = 2", "replicas = 2\nreplication_factor = 0");
        let e = Pipeline::parse(Path::new("p.toml"), &zero)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("stage two: replication_factor must be at least 1, not 0"),
            "{e}"
        );
        let twice = EXAMPLE
            .replace("name = \"p\"", "name = \"p\"\nreplication_factor = 3")
            .replace(
                "args = [\"--batch-size\", \"10\"]",
                "args = [\"--replication-factor=1\"]",
            );
        let e = Pipeline::parse(Path::new("p.toml"), &twice)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("stage two: --replication-factor in args and a replication_factor"),
            "{e}"
        );
        let alone = EXAMPLE.replace(
            "args = [\"--batch-size\", \"10\"]",
            "args = [\"--replication-factor\", \"3\"]",
        );
        assert!(
            Pipeline::parse(Path::new("p.toml"), &alone).is_ok(),
            "in args alone it is passed on as it is"
        );
        let huge = EXAMPLE.replace("name = \"p\"", "name = \"p\"\nreplication_factor = 40000");
        assert!(Pipeline::parse(Path::new("p.toml"), &huge).is_err());
    }

    #[test]
    fn metrics_ports_follow_the_scheme() {
        let text = EXAMPLE.replace("name = \"p\"", "name = \"p\"\nmetrics_port = 9300");
        let p = Pipeline::parse(Path::new("p.toml"), &text).unwrap();
        assert_eq!(p.metrics.host, "127.0.0.1");
        assert_eq!(p.metrics.stage_base(&p.stages, 0), Some(9300));
        assert_eq!(
            p.metrics.stage_base(&p.stages, 1),
            Some(9332),
            "after the first stage's block"
        );
        assert_eq!(MetricsPorts::replica_ports(9332, 0), [9332, 9348]);
        assert_eq!(MetricsPorts::replica_ports(9332, 1), [9333, 9349]);

        let own = text.replace("replicas = 2", "replicas = 2\nmetrics_port = 9500");
        let p = Pipeline::parse(Path::new("p.toml"), &own).unwrap();
        assert_eq!(p.metrics.stage_base(&p.stages, 1), Some(9500));

        let overlap = text.replace("replicas = 2", "replicas = 2\nmetrics_port = 9331");
        let e = Pipeline::parse(Path::new("p.toml"), &overlap)
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlap those of stage one"), "{e}");
        let high = text.replace("9300", "65534");
        let e = Pipeline::parse(Path::new("p.toml"), &high)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid ports"), "{e}");
    }

    /// Every port a stage's replicas may take (both ports of each), as the supervisor picks them.
    fn ports_in_use(p: &Pipeline) -> Vec<(String, u16)> {
        (0..p.stages.len())
            .flat_map(|i| {
                let base = p.metrics.stage_base(&p.stages, i).unwrap();
                (0..p.stages[i].replicas).flat_map(move |r| MetricsPorts::replica_ports(base, r))
            })
            .zip(
                p.stages
                    .iter()
                    .flat_map(|s| std::iter::repeat_n(s.name.clone(), 2 * s.replicas as usize)),
            )
            .map(|(port, stage)| (stage, port))
            .collect()
    }

    #[test]
    fn scaling_by_reload_moves_no_metrics_port_and_blocks_never_overlap() {
        let file = |replicas: u32| {
            format!(
                "[pipeline]\nname = \"p\"\nmetrics_port = 19520\n\
                 [[stage]]\nname = \"one\"\nplugin = \"a.so\"\n\
                 [[stage]]\nname = \"two\"\nplugin = \"b.so\"\nreplicas = {replicas}\n\
                 [[stage]]\nname = \"three\"\nplugin = \"c.so\"\n"
            )
        };
        let before = Pipeline::parse(Path::new("p.toml"), &file(2)).unwrap();
        for replicas in 1..=METRICS_REPLICAS {
            // The file as a reload reads it after `replicas` changed.
            let after = Pipeline::parse(Path::new("p.toml"), &file(replicas)).unwrap();
            for stage in 0..3 {
                assert_eq!(
                    after.metrics.stage_base(&after.stages, stage),
                    before.metrics.stage_base(&before.stages, stage),
                    "stage {stage}'s block moved when stage two went to {replicas} replicas"
                );
            }
            let base = after.metrics.stage_base(&after.stages, 1).unwrap();
            for r in 0..2 {
                assert_eq!(
                    MetricsPorts::replica_ports(base, r),
                    [base + r as u16, base + (METRICS_REPLICAS + r) as u16],
                    "a running replica keeps its ports"
                );
            }
            let ports = ports_in_use(&after);
            for (i, (stage, port)) in ports.iter().enumerate() {
                if let Some((other, _)) = ports[i + 1..].iter().find(|(_, p)| p == port) {
                    panic!("port {port} of stage {stage} is also one of stage {other} at {replicas} replicas");
                }
            }
        }
        let e = Pipeline::parse(Path::new("p.toml"), &file(METRICS_REPLICAS + 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("stage two: 17 replicas do not fit its metrics block: a stage that serves metrics has at most 16 replicas"),
            "{e}"
        );
        let unmetered = file(METRICS_REPLICAS + 1).replace("metrics_port = 19520\n", "");
        assert!(
            Pipeline::parse(Path::new("p.toml"), &unmetered).is_ok(),
            "without metrics, replicas are limited by max_replicas only"
        );
    }

    #[test]
    fn refuses_bad_files() {
        let bad = |text: &str| {
            Pipeline::parse(Path::new("p.toml"), text)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[pipeline]\nname = \"p\"").contains("no [[stage]]"));
        assert!(
            bad("[pipeline]\nname = \"a/b\"\n[[stage]]\nname=\"x\"\nplugin=\"x\"")
                .contains("pipeline name")
        );
        assert!(
            bad("[pipeline]\nname = \"p\"\n[[stage]]\nname=\"x\"\nplugin=\"x\"\nreplicas=0")
                .contains("replicas")
        );
        assert!(bad("[pipeline]\nname = \"p\"\n[[stage]]\nname=\"x\"\nplugin=\"x\"\n[[stage]]\nname=\"x\"\nplugin=\"y\"")
            .contains("used twice"));
        assert!(
            bad("[pipeline]\nname = \"p\"\n[[stage]]\nname=\"x\"\nplugin=\"x\"\nbogus=1")
                .contains("bogus")
        );
    }

    #[test]
    fn cycles_are_found_and_named_with_their_topics() {
        let flow = |stage, input, output| Flow {
            stage,
            input,
            output,
        };
        let line = vec![
            flow("one", None, Some("a")),
            flow("two", Some("a"), Some("b")),
            flow("three", Some("b"), Some("c")),
        ];
        assert_eq!(find_cycle(&line), None);
        let pair = vec![
            flow("x", Some("t1"), Some("t2")),
            flow("y", Some("t2"), Some("t1")),
        ];
        let cycle = find_cycle(&pair).expect("a cycle");
        assert!(
            cycle.contains("x writes t2, which y writes t1, which x reads"),
            "{cycle}"
        );
        let own = vec![flow("loop", Some("t"), Some("t"))];
        assert!(find_cycle(&own).expect("a cycle").contains("loop writes t"));
        let unknown = vec![flow("x", None, None), flow("y", None, None)];
        assert_eq!(find_cycle(&unknown), None);
    }

    #[test]
    fn a_cycle_or_too_many_replicas_is_refused_when_the_file_is_read() {
        let file = |extra: &str, replicas: u32| {
            format!(
                "[pipeline]\nname = \"p\"\n{extra}\n[[stage]]\nname = \"a\"\nplugin = \"a.so\"\ninput_topic = \"x\"\noutput_topic = \"y\"\nreplicas = {replicas}\n[[stage]]\nname = \"b\"\nplugin = \"b.so\"\ninput_topic = \"y\"\noutput_topic = \"x\"\n"
            )
        };
        let err = Pipeline::parse(Path::new("p.toml"), &file("", 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stages form a cycle: a writes y, which b writes x, which a reads"),
            "{err}"
        );
        assert!(Pipeline::parse(Path::new("p.toml"), &file("allow_cycles = true", 1)).is_ok());
        let err = Pipeline::parse(Path::new("p.toml"), &file("allow_cycles = true", 1000))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1000 replicas is more than max_replicas (64)"),
            "{err}"
        );
        assert!(Pipeline::parse(
            Path::new("p.toml"),
            &file("allow_cycles = true\nmax_replicas = 1000", 1000)
        )
        .is_ok());
    }
}
