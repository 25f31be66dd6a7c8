//! A `SourcePipelineStage` subclass behind the plugin ABI's `SourceObject`.
//!
//! The library's source is a loop: `start()` calls `self.to_output(key, value)` for each
//! record. The host polls instead, so `start()` runs in a thread of its own, and `to_output`
//! encodes the value (in Rust, against the output schema) and hands it over through a
//! rendezvous channel: it returns only once a poll has taken the record into the host's
//! buffer. That is the backpressure (the source runs as fast as the host produces), and it
//! means a stopped source has delivered every record `to_output` returned for: there is no
//! queue of records the host never saw. Once the host drops the source, `to_output` raises
//! `kafka_client.StageStopped` in the thread (a `BaseException`, so `except Exception` in the
//! stage does not swallow it); the process exits without waiting for the thread.

use crate::avro::CompiledSchema;
use crate::guarded;
use crate::interpreter::describe;
use crate::output;
use crate::script::Declared;
use plugin_abi::std_types::{RResult, RString};
use plugin_abi::{OutputBuffer, SourceObject, SourceStatus};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyType};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a poll waits for the first record before telling the host to poll again.
const FIRST_RECORD_WAIT: Duration = Duration::from_millis(100);
/// How long a poll keeps gathering records once it has one.
const GATHER_WAIT: Duration = Duration::from_millis(5);

/// A record handed over by `to_output`: its key (`None`: null) and its encoded value.
type Handed = (Option<Vec<u8>>, Vec<u8>);

/// How `start()` is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RunState {
    NotStarted,
    Running,
    Finished,
    Failed(String),
}

/// `self._stage_host_sink`: what the shim's `to_output` calls.
#[pyclass(frozen)]
struct Sink {
    handoff: SyncSender<Handed>,
    schema: Arc<CompiledSchema>,
}

#[pymethods]
impl Sink {
    fn __call__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let key = if key.is_none() {
            None
        } else if let Ok(text) = key.downcast::<PyString>() {
            Some(text.to_str()?.as_bytes().to_vec())
        } else if let Ok(bytes) = key.downcast::<PyBytes>() {
            Some(bytes.as_bytes().to_vec())
        } else {
            return Err(PyTypeError::new_err(format!(
                "to_output key must be str, bytes or None, not {}",
                key.get_type().name()?
            )));
        };
        let mut datum = Vec::new();
        self.schema
            .encode(value, &mut datum)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let handoff = self.handoff.clone();
        match py.allow_threads(move || handoff.send((key, datum))) {
            Ok(()) => Ok(()),
            Err(_) => {
                let stopped = py
                    .import("kafka_client")?
                    .getattr("StageStopped")?
                    .downcast_into::<PyType>()?;
                Err(PyErr::from_type(stopped, "stage-host stopped this source"))
            }
        }
    }
}

/// A constructed Python source.
pub(crate) struct PythonSource {
    class: String,
    instance: Option<PyObject>,
    taken: Receiver<Handed>,
    state: Arc<Mutex<RunState>>,
}

impl PythonSource {
    /// Gives the instance its sink; `start()` runs at the first poll.
    pub(crate) fn new(declared: Declared) -> Result<PythonSource, String> {
        let (handoff, taken) = mpsc::sync_channel(0);
        Python::with_gil(|py| {
            let schema = CompiledSchema::parse(py, &declared.spec.output_value_schema)
                .map_err(|e| format!("{}'s output schema: {e}", declared.spec.name))?;
            let sink = Sink {
                handoff,
                schema: Arc::new(schema),
            };
            let instance = declared.instance.bind(py);
            instance
                .setattr(
                    "_stage_host_sink",
                    Py::new(py, sink).map_err(|e| describe(py, &e))?,
                )
                .map_err(|e| describe(py, &e))?;
            Ok(PythonSource {
                class: declared.spec.name.clone(),
                instance: Some(declared.instance),
                taken,
                state: Arc::new(Mutex::new(RunState::NotStarted)),
            })
        })
    }

    fn state(&self) -> RunState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `start()` in its own thread, recording how it ends.
    fn start(&mut self) -> Result<(), String> {
        let Some(instance) = self.instance.take() else {
            return Ok(());
        };
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = RunState::Running;
        let state = Arc::clone(&self.state);
        std::thread::Builder::new()
            .name("python-source".into())
            .spawn(move || {
                let ended = Python::with_gil(|py| match instance.bind(py).call_method0("start") {
                    Ok(_) => RunState::Finished,
                    Err(e) => {
                        let stopped = py
                            .import("kafka_client")
                            .and_then(|m| m.getattr("StageStopped"))
                            .map(|t| e.get_type(py).is(&t))
                            .unwrap_or(false);
                        if stopped {
                            RunState::Finished
                        } else {
                            RunState::Failed(describe(py, &e))
                        }
                    }
                });
                *state.lock().unwrap_or_else(|e| e.into_inner()) = ended;
            })
            .map(drop)
            .map_err(|e| format!("cannot start a thread for {}.start(): {e}", self.class))
    }

    fn take(&self, out: &mut OutputBuffer, (key, datum): Handed) {
        output::push_encoded(out, 0, Some(key.as_deref()), &datum);
    }
}

impl SourceObject for PythonSource {
    fn poll(&mut self, max: u32, out: &mut OutputBuffer) -> RResult<SourceStatus, RString> {
        guarded(|| {
            if self.state() == RunState::NotStarted {
                self.start()?;
            }
            let max = max.max(1) as usize;
            match self.taken.recv_timeout(FIRST_RECORD_WAIT) {
                Ok(handed) => self.take(out, handed),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return match self.state() {
                        RunState::Finished => Ok(SourceStatus::Finished),
                        RunState::Failed(why) => {
                            Err(format!("{}.start() raised {why}", self.class))
                        }
                        RunState::Running | RunState::NotStarted => Ok(SourceStatus::WaitMillis(0)),
                    };
                }
            }
            let until = Instant::now() + GATHER_WAIT;
            while out.records.len() < max {
                let left = until.saturating_duration_since(Instant::now());
                match self.taken.recv_timeout(left) {
                    Ok(handed) => self.take(out, handed),
                    Err(_) => break,
                }
            }
            Ok(SourceStatus::Ready)
        })
    }
}
