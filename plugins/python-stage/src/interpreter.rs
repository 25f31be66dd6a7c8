//! Starting CPython inside the stage process, once.
//!
//! The host opens plugins `RTLD_LOCAL` (as every plugin loader does), so the libpython this
//! library links is loaded with local symbols too, and a C extension module (`_json`,
//! `_decimal`, a package's native code), which on Debian is not linked against libpython and
//! expects the interpreter's `Py*` symbols to be global, would fail to import with undefined
//! symbols. So before starting the interpreter the bridge opens libpython again with
//! `RTLD_NOLOAD | RTLD_GLOBAL`, which promotes the already loaded library's symbols to global.

use crate::log::{self, Level};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::ffi::{CStr, CString};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The kafka_client package the bridge provides: (module name, source, is a package).
const PACKAGE: &[(&str, &str, bool)] = &[
    (
        "kafka_client",
        include_str!("../python/kafka_client/__init__.py"),
        true,
    ),
    (
        "kafka_client.kafka_config",
        include_str!("../python/kafka_client/kafka_config.py"),
        false,
    ),
    (
        "kafka_client.kafka_client",
        include_str!("../python/kafka_client/kafka_client.py"),
        false,
    ),
    (
        "kafka_client.cluster_admin",
        include_str!("../python/kafka_client/cluster_admin.py"),
        false,
    ),
    (
        "kafka_client.schema_registry",
        include_str!("../python/kafka_client/schema_registry.py"),
        false,
    ),
    (
        "kafka_client.kafka_pipeline",
        include_str!("../python/kafka_client/kafka_pipeline/__init__.py"),
        true,
    ),
    (
        "kafka_client.kafka_pipeline.pipeline",
        include_str!("../python/kafka_client/kafka_pipeline/pipeline/__init__.py"),
        true,
    ),
    (
        "kafka_client.kafka_pipeline.pipeline.pipeline_stage",
        include_str!("../python/kafka_client/kafka_pipeline/pipeline/pipeline_stage.py"),
        false,
    ),
    (
        "kafka_client.kafka_pipeline.pipeline.kafka_pipeline",
        include_str!("../python/kafka_client/kafka_pipeline/pipeline/kafka_pipeline.py"),
        false,
    ),
];

const BOOTSTRAP: &str = include_str!("../python/bootstrap.py");

/// The class the process runs, for its log lines.
static STAGE_NAME: OnceLock<String> = OnceLock::new();

/// Names the stage in the log lines of `print()`.
pub(crate) fn set_stage_name(name: &str) {
    let _ = STAGE_NAME.set(name.to_string());
}

fn stage_name() -> &'static str {
    STAGE_NAME.get().map(String::as_str).unwrap_or("python")
}

/// Starts the interpreter if it is not running; every later call returns the first result.
pub(crate) fn ensure() -> Result<(), String> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED.get_or_init(start).clone()
}

fn start() -> Result<(), String> {
    make_libpython_global()?;
    pyo3::prepare_freethreaded_python();
    Python::with_gil(|py| {
        install(py).map_err(|e| format!("cannot start the Python bridge: {}", describe(py, &e)))
    })
}

/// Promotes the loaded libpython's symbols to global (see the module doc).
fn make_libpython_global() -> Result<(), String> {
    // SAFETY: dladdr and dlopen are called with a valid function address, a zeroed out-struct
    // and a NUL-terminated path that dladdr returned; the handle is never closed, so the
    // library stays loaded as it already was.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let symbol = pyo3::ffi::Py_IsInitialized as *const libc::c_void;
        if libc::dladdr(symbol, &mut info) == 0 || info.dli_fname.is_null() {
            return Err("cannot find the libpython this plugin is linked with (dladdr)".into());
        }
        let handle = libc::dlopen(
            info.dli_fname,
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_GLOBAL,
        );
        if handle.is_null() {
            let path = CStr::from_ptr(info.dli_fname).to_string_lossy();
            let reason = CStr::from_ptr(libc::dlerror()).to_string_lossy();
            return Err(format!(
                "cannot make {path}'s symbols global for C extensions: {reason}"
            ));
        }
    }
    Ok(())
}

/// One log line from Python (`_stage_host.log`).
#[pyfunction]
#[pyo3(name = "log")]
fn log_line(level: &str, line: &str) {
    let level = if level == "warn" {
        Level::Warn
    } else {
        Level::Info
    };
    log::line(level, stage_name(), line);
}

/// A stage's KafkaConfig: its URLs give way to the host's connection; said once
/// (`_stage_host.note_kafka_config`).
#[pyfunction]
fn note_kafka_config(config: &Bound<'_, PyAny>) {
    static SAID: Mutex<bool> = Mutex::new(false);
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if *said || config.is_none() {
        return;
    }
    *said = true;
    let text = config
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "the stage's KafkaConfig".into());
    log::line(
        Level::Info,
        stage_name(),
        &format!(
            "{text} is not used: stage-host connects with its own settings (--bootstrap-servers, --schema-registry-url, --rest-proxy-url)"
        ),
    );
}

fn install(py: Python<'_>) -> PyResult<()> {
    // What the Python side calls back into.
    let module = PyModule::new(py, "_stage_host")?;
    module.add_function(wrap_pyfunction!(log_line, &module)?)?;
    module.add_function(wrap_pyfunction!(note_kafka_config, &module)?)?;
    let sys = py.import("sys")?;
    sys.getattr("modules")?.set_item("_stage_host", module)?;
    // Scripts that look at argv see no arguments of the host's.
    sys.setattr("argv", vec![String::new()])?;
    let modules = PyDict::new(py);
    for (name, source, is_package) in PACKAGE {
        modules.set_item(
            name,
            PyTuple::new(
                py,
                [
                    source.into_pyobject(py)?.into_any(),
                    is_package.into_pyobject(py)?.to_owned().into_any(),
                ],
            )?,
        )?;
    }
    let bootstrap = PyModule::from_code(
        py,
        &CString::new(BOOTSTRAP).expect("no NUL in the bootstrap"),
        c"<stage-host bridge>/bootstrap.py",
        c"_stage_host_bootstrap",
    )?;
    sys.getattr("modules")?
        .set_item("_stage_host_bootstrap", &bootstrap)?;
    bootstrap.call_method1("install", (modules,))?;
    Ok(())
}

/// Puts the script's directory, `python_path` and the venv's site-packages on `sys.path`.
pub(crate) fn add_paths(
    py: Python<'_>,
    script_dir: &Path,
    python_path: &[std::path::PathBuf],
    venv: Option<&Path>,
) -> Result<(), String> {
    let run = || -> PyResult<Result<(), String>> {
        let sys = py.import("sys")?;
        let path = sys.getattr("path")?;
        let mut front = vec![script_dir.to_path_buf()];
        front.extend(python_path.iter().cloned());
        for (n, dir) in front.iter().enumerate() {
            let dir = dir.display().to_string();
            if !path.contains(&dir)? {
                path.call_method1("insert", (n, dir))?;
            }
        }
        if let Some(venv) = venv {
            let version_info = sys.getattr("version_info")?;
            let version: (u8, u8) = (
                version_info.get_item(0)?.extract()?,
                version_info.get_item(1)?.extract()?,
            );
            let site = venv.join(format!(
                "lib/python{}.{}/site-packages",
                version.0, version.1
            ));
            if !site.is_dir() {
                return Ok(Err(format!(
                    "venv {} has no {}: the bridge embeds Python {}.{}; make the venv with that Python (python{}.{} -m venv)",
                    venv.display(),
                    site.display(),
                    version.0,
                    version.1,
                    version.0,
                    version.1
                )));
            }
            py.import("site")?
                .call_method1("addsitedir", (site.display().to_string(),))?;
        }
        Ok(Ok(()))
    };
    run().map_err(|e| describe(py, &e))?
}

/// `TypeError: message`, one line, for a Python exception.
pub(crate) fn describe(py: Python<'_>, err: &PyErr) -> String {
    let kind = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let message = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let text = if message.is_empty() {
        kind
    } else {
        format!("{kind}: {message}")
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The traceback of `err`, for the log when a script fails to load.
pub(crate) fn traceback(py: Python<'_>, err: &PyErr) -> Option<String> {
    let tb = err.traceback(py)?;
    tb.format().ok()
}
