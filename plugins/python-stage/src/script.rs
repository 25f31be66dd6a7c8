//! Loading the stage's script, constructing its class, and reading what the constructor
//! recorded: the stage's spec.

use crate::config::BridgeConfig;
use crate::interpreter::{self, describe};
use crate::log::{self, Level};
use plugin_abi::{StageKind, StageSpec};
use pyo3::prelude::*;
use pyo3::types::PyModule;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A constructed stage object and what it declared.
pub(crate) struct Declared {
    /// The spec the host runs the stage with: the class as its name, the script's sha256 as
    /// its version, topics, group and output schema from the constructor.
    pub spec: StageSpec,
    /// The instance of the class.
    pub instance: Py<PyAny>,
}

/// Scripts run once per process, by canonical path.
static LOADED: Mutex<Option<HashMap<PathBuf, Py<PyModule>>>> = Mutex::new(None);

/// Starts the interpreter, runs the script (once per process), constructs the class and reads
/// its declaration. Every failure is one line naming the script or class.
pub(crate) fn declare(config: &BridgeConfig) -> Result<Declared, String> {
    interpreter::ensure()?;
    let script = std::path::absolute(&config.script).unwrap_or(config.script.clone());
    let source = std::fs::read(&script).map_err(|e| {
        format!(
            "cannot read the Python stage's script {}: {e}",
            script.display()
        )
    })?;
    let sha256 = hex(&Sha256::digest(&source));
    interpreter::set_stage_name(&config.class);
    Python::with_gil(|py| {
        let dir = script.parent().unwrap_or(Path::new("/"));
        interpreter::add_paths(py, dir, &config.python_path, config.venv.as_deref())?;
        let module = load(py, &script)?;
        let class = module.getattr(config.class.as_str()).map_err(|_| {
            format!(
                "the script {} defines no class {} (classes: {})",
                script.display(),
                config.class,
                classes_in(&module).join(", ")
            )
        })?;
        let stage_module = py
            .import("kafka_client.kafka_pipeline.pipeline.pipeline_stage")
            .map_err(|e| describe(py, &e))?;
        let base = stage_module
            .getattr("PipelineStage")
            .map_err(|e| describe(py, &e))?;
        let source_base = stage_module
            .getattr("SourcePipelineStage")
            .map_err(|e| describe(py, &e))?;
        let is_stage = class.is_instance_of::<pyo3::types::PyType>()
            && class
                .downcast::<pyo3::types::PyType>()
                .map(|t| t.is_subclass(&base).unwrap_or(false))
                .unwrap_or(false);
        if !is_stage {
            return Err(format!(
                "{} in {} is not a subclass of kafka_client's PipelineStage or SourcePipelineStage",
                config.class,
                script.display()
            ));
        }
        let bootstrap = py
            .import("_stage_host_bootstrap")
            .map_err(|e| describe(py, &e))?;
        let instance = bootstrap
            .call_method1("construct", (&class, &module))
            .map_err(|e| {
                log_traceback(py, &e);
                format!("{}(...) failed: {}", config.class, describe(py, &e))
            })?;
        let kind = if instance.is_instance(&source_base).unwrap_or(false) {
            StageKind::Source
        } else {
            StageKind::Stage
        };
        let spec = read_spec(&instance, &config.class, &sha256, kind)?;
        Ok(Declared {
            spec,
            instance: instance.unbind(),
        })
    })
}

/// Runs the script as a module, or returns the module a previous call ran.
fn load<'py>(py: Python<'py>, script: &Path) -> Result<Bound<'py, PyModule>, String> {
    let key = script.canonicalize().unwrap_or(script.to_path_buf());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let loaded = loaded.get_or_insert_with(HashMap::new);
    if let Some(module) = loaded.get(&key) {
        return Ok(module.bind(py).clone());
    }
    let name = script
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .replace(|c: char| !c.is_alphanumeric(), "_")
        })
        .unwrap_or_else(|| "stage_script".into());
    let module = py
        .import("_stage_host_bootstrap")
        .and_then(|b| b.call_method1("load_script", (script.display().to_string(), name)))
        .map_err(|e| {
            log_traceback(py, &e);
            format!(
                "the Python stage's script {} failed: {}",
                script.display(),
                describe(py, &e)
            )
        })?
        .downcast_into::<PyModule>()
        .map_err(|e| e.to_string())?;
    loaded.insert(key, module.clone().unbind());
    Ok(module)
}

fn log_traceback(py: Python<'_>, err: &PyErr) {
    if let Some(tb) = interpreter::traceback(py, err) {
        for line in tb.lines() {
            log::line(Level::Warn, "python", line);
        }
    }
}

fn classes_in(module: &Bound<'_, PyModule>) -> Vec<String> {
    module
        .dict()
        .iter()
        .filter(|(_, v)| v.is_instance_of::<pyo3::types::PyType>())
        .map(|(k, _)| k.to_string())
        .collect()
}

/// Reads what `PipelineStage.__init__` recorded on the instance.
fn read_spec(
    instance: &Bound<'_, PyAny>,
    class: &str,
    sha256: &str,
    kind: StageKind,
) -> Result<StageSpec, String> {
    let attr = |name: &str| -> Result<Option<Bound<'_, PyAny>>, String> {
        match instance.getattr(name) {
            Ok(v) if v.is_none() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(format!(
                "{class}'s constructor did not call PipelineStage.__init__ (super().__init__(...)), so it declares no topics"
            )),
        }
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        attr(name)?
            .map(|v| {
                v.extract::<String>()
                    .map_err(|_| format!("{class}'s {name} is not a str"))
            })
            .transpose()
    };
    let input_topic = text("_stage_host_input_topic")?;
    let group_id = text("_stage_host_group_id")?;
    let output_topic = text("_stage_host_output_topic")?.ok_or_else(|| {
        format!("{class} declares no output topic; stage-host runs stages that produce")
    })?;
    let topic_config = attr("_stage_host_topic_config")?.ok_or_else(|| {
        format!(
            "{class} gives no output_topic_config (KafkaTopicConfig): stage-host needs its partitions, replication and schema file"
        )
    })?;
    let field = |name: &str| -> Result<Bound<'_, PyAny>, String> {
        topic_config
            .getattr(name)
            .map_err(|_| format!("{class}'s output_topic_config has no {name}"))
    };
    let partitions: i32 = field("n_partitions")?
        .extract()
        .map_err(|_| format!("{class}'s output_topic_config.n_partitions is not an int"))?;
    let replication: i16 = field("n_replications")?
        .extract()
        .map_err(|_| format!("{class}'s output_topic_config.n_replications is not an int"))?;
    let schema_path: String = field("sr_json_path")?
        .extract()
        .map_err(|_| format!("{class}'s output_topic_config.sr_json_path is not a str"))?;
    let schema = std::fs::read_to_string(&schema_path)
        .map_err(|e| format!("{class}'s output schema file {schema_path}: {e}"))?;
    let mut spec = match kind {
        StageKind::Stage => {
            let topic = input_topic.ok_or_else(|| format!("{class} declares no input topic"))?;
            let group = group_id.ok_or_else(|| format!("{class} declares no consumer group"))?;
            StageSpec::stage(class, sha256).input(topic, group)
        }
        StageKind::Source => StageSpec::source(class, sha256),
    };
    spec = spec
        .output(output_topic, partitions, replication)
        .output_schema(schema);
    Ok(spec)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
