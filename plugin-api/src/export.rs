//! Plugin side of the boundary: adapters from the author's typed traits to the ABI trait
//! objects, and the export macros.
//!
//! Every function the host can call goes through [`guarded`], which catches panics: since Rust
//! 1.81 a panic unwinding out of an `extern "C"` function aborts the process, and a plugin bug
//! must not take the host down with it.

use crate::avro::{Decoder, Encoder};
use crate::one_line;
use crate::stage::{Config, Emitter, Poll, Record, SourceStage, Stage};
use plugin_abi::export_support::{PrefixTypeTrait, TD_Opaque};
use plugin_abi::std_types::{RErr, ROk, ROption, RResult, RStr, RString};
use plugin_abi::{
    FailureKind, InputBatch, InputRecord, OutputBuffer, PluginModule, PluginModuleRef,
    RecordFailure, SourceBox, SourceObject, SourceObject_TO, SourceStatus, StageBox, StageKind,
    StageObject, StageObject_TO, StageSpec, PLUGIN_API_VERSION,
};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Where the plugin's panic hook leaves the message and location of the last panic.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether this thread is inside a [`guarded`] call, whose panics the hook records.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the panic hook of the plugin's copy of std (a cdylib links its own) with one that
/// records a panic inside a [`guarded`] call instead of printing it, so a panicking transform
/// becomes one error line in the host's log rather than a message and backtrace hint on
/// stderr. Other panics go to the hook that was there before: a stage linked into a program
/// (the benchmark, an author's unit tests) leaves that program's own panics as they were.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                return previous(info);
            }
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = payload_text(info.payload());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("panicked{location}: {message}")));
        }));
    });
}

/// Marks the thread as inside a [`guarded`] call until dropped (restoring the mark it found,
/// so nested calls keep it).
struct GuardedScope(bool);

impl GuardedScope {
    fn enter() -> Self {
        GuardedScope(GUARDED.with(|g| g.replace(true)))
    }
}

impl Drop for GuardedScope {
    fn drop(&mut self) {
        GUARDED.with(|g| g.set(self.0));
    }
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| format!("panicked: {}", payload_text(payload.as_ref())))
}

/// Runs `f`, turning a panic into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> RResult<T, RString> {
    install_panic_hook();
    let _scope = GuardedScope::enter();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(RString::from(e)),
        Err(payload) => RErr(RString::from(panic_message(payload))),
    }
}

fn config_from(json: RStr<'_>) -> Result<Config, String> {
    let text = json.as_str();
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    serde_json::from_str(text)
        .map(Config::new)
        .map_err(|e| format!("stage config is not valid JSON: {e}"))
}

fn spec_json(mut spec: StageSpec, kind: StageKind) -> RResult<RString, RString> {
    spec.kind = kind;
    match serde_json::to_string(&spec) {
        Ok(s) => ROk(s.into()),
        Err(e) => RErr(e.to_string().into()),
    }
}

/// A typed [`Stage`] behind the ABI trait.
struct StageAdapter<S: Stage> {
    stage: S,
    decoder: Decoder,
    encoder: Encoder,
}

impl<S: Stage> StageAdapter<S> {
    fn construct(config: RStr<'_>) -> Result<Self, String> {
        let spec = S::spec();
        let config = config_from(config)?;
        let decoder = Decoder::new(spec.input_value_schema.as_deref()).map_err(one_line)?;
        let encoder = Encoder::new(&spec.output_value_schema).map_err(one_line)?;
        let stage =
            S::new(&config).map_err(|e| format!("stage constructor failed: {}", one_line(e)))?;
        Ok(StageAdapter {
            stage,
            decoder,
            encoder,
        })
    }

    /// Processes one record; on failure says why, and the caller discards its outputs.
    fn process_record(
        &mut self,
        index: u32,
        meta: &InputRecord,
        bytes: &[u8],
        out: &mut OutputBuffer,
    ) -> Result<(), (FailureKind, String)> {
        let value = self
            .decoder
            .decode_into::<S::Input>(meta.value_schema_id, meta.value.of(bytes))
            .map_err(|e| (FailureKind::Decode, e.to_string()))?;
        let record = Record {
            value,
            key: meta.has_key.then(|| meta.key.of(bytes)),
            partition: meta.partition,
            offset: meta.offset,
            timestamp_ms: meta.timestamp_ms,
        };
        let mut emitter = Emitter::new(&self.encoder, out, index, true);
        let stage = &mut self.stage;
        match catch_unwind(AssertUnwindSafe(|| stage.transform(record, &mut emitter))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if emitter.encode_failed => Err((FailureKind::Encode, one_line(e))),
            Ok(Err(e)) => Err((FailureKind::Transform, one_line(e))),
            Err(payload) => Err((FailureKind::Panic, panic_message(payload))),
        }
    }
}

impl<S: Stage> StageObject for StageAdapter<S> {
    fn add_writer_schema(&mut self, id: u32, schema_json: RStr<'_>) -> RResult<(), RString> {
        guarded(|| {
            self.decoder
                .add_writer_schema(id, schema_json.as_str())
                .map_err(|e| format!("writer schema {id}: {e}"))
        })
    }

    fn process(&mut self, batch: InputBatch<'_>, out: &mut OutputBuffer) -> RResult<(), RString> {
        guarded(|| {
            let bytes = batch.bytes.as_slice();
            for (index, meta) in batch.records.iter().enumerate() {
                let index = index as u32;
                let (bytes_mark, records_mark) = (out.bytes.len(), out.records.len());
                if let Err((kind, message)) = self.process_record(index, meta, bytes, out) {
                    out.bytes.truncate(bytes_mark);
                    out.records.truncate(records_mark);
                    out.failures.push(RecordFailure {
                        input_index: index,
                        kind,
                        message: message.into(),
                    });
                }
            }
            Ok(())
        })
    }
}

/// A typed [`SourceStage`] behind the ABI trait.
struct SourceAdapter<S: SourceStage> {
    source: S,
    encoder: Encoder,
}

impl<S: SourceStage> SourceObject for SourceAdapter<S> {
    fn poll(&mut self, max: u32, out: &mut OutputBuffer) -> RResult<SourceStatus, RString> {
        guarded(|| {
            let (bytes_mark, records_mark) = (out.bytes.len(), out.records.len());
            let mut emitter = Emitter::new(&self.encoder, out, 0, false);
            let result = self.source.poll(&mut emitter, max as usize);
            let encode_failed = emitter.encode_failed;
            match result {
                Ok(Poll::Ready) => Ok(SourceStatus::Ready),
                Ok(Poll::Wait(d)) => Ok(SourceStatus::WaitMillis(d.as_millis() as u64)),
                Ok(Poll::Finished) => Ok(SourceStatus::Finished),
                Err(e) => {
                    out.bytes.truncate(bytes_mark);
                    out.records.truncate(records_mark);
                    let what = if encode_failed { "encode" } else { "poll" };
                    Err(format!("source {what} failed: {}", one_line(e)))
                }
            }
        })
    }

    fn checkpoint(&self) -> RResult<ROption<RString>, RString> {
        guarded(|| Ok(self.source.checkpoint().map(RString::from).into()))
    }

    fn restore(&mut self, checkpoint: RStr<'_>) -> RResult<(), RString> {
        guarded(|| {
            self.source
                .restore(checkpoint.as_str())
                .map_err(|e| format!("source restore failed: {}", one_line(e)))
        })
    }
}

extern "C" fn stage_spec<S: Stage>() -> RResult<RString, RString> {
    match guarded(|| Ok(S::spec())) {
        ROk(spec) => spec_json(spec, StageKind::Stage),
        RErr(e) => RErr(e),
    }
}

extern "C" fn source_spec<S: SourceStage>() -> RResult<RString, RString> {
    match guarded(|| Ok(S::spec())) {
        ROk(spec) => spec_json(spec, StageKind::Source),
        RErr(e) => RErr(e),
    }
}

/// Constructs `S` behind the ABI trait object. Exported through the root module, and handed
/// to plugin-host directly for a stage compiled into the host (`crate::linked`).
pub(crate) extern "C" fn new_stage<S: Stage>(config: RStr<'_>) -> RResult<StageBox, RString> {
    guarded(|| {
        StageAdapter::<S>::construct(config)
            .map(|adapter| StageObject_TO::from_value(adapter, TD_Opaque))
    })
}

/// Constructs `S` behind the ABI trait object, as [`new_stage`].
pub(crate) extern "C" fn new_source<S: SourceStage>(
    config: RStr<'_>,
) -> RResult<SourceBox, RString> {
    guarded(|| {
        let spec = S::spec();
        let config = config_from(config)?;
        let encoder = Encoder::new(&spec.output_value_schema).map_err(one_line)?;
        let source =
            S::new(&config).map_err(|e| format!("source constructor failed: {}", one_line(e)))?;
        Ok(SourceObject_TO::from_value(
            SourceAdapter { source, encoder },
            TD_Opaque,
        ))
    })
}

extern "C" fn not_a_stage(_: RStr<'_>) -> RResult<StageBox, RString> {
    RErr("this plugin is a source stage, not a transforming stage".into())
}

extern "C" fn not_a_source(_: RStr<'_>) -> RResult<SourceBox, RString> {
    RErr("this plugin is a transforming stage, not a source".into())
}

/// The root module for a transforming stage. Called by [`crate::export_stage!`].
#[doc(hidden)]
pub fn stage_module<S: Stage>() -> PluginModuleRef {
    PluginModule {
        api_version: PLUGIN_API_VERSION,
        spec_json: stage_spec::<S>,
        new_stage: new_stage::<S>,
        new_source: not_a_source,
    }
    .leak_into_prefix()
}

/// The root module for a source stage. Called by [`crate::export_source!`].
#[doc(hidden)]
pub fn source_module<S: SourceStage>() -> PluginModuleRef {
    PluginModule {
        api_version: PLUGIN_API_VERSION,
        spec_json: source_spec::<S>,
        new_stage: not_a_stage,
        new_source: new_source::<S>,
    }
    .leak_into_prefix()
}

/// Exports a [`Stage`] type as the plugin's entry point. Use once per cdylib.
#[macro_export]
macro_rules! export_stage {
    ($stage:ty) => {
        $crate::__private::__export_root_module!($crate::__private::stage_module::<$stage>);
    };
}

/// Exports a [`SourceStage`] type as the plugin's entry point. Use once per cdylib.
#[macro_export]
macro_rules! export_source {
    ($source:ty) => {
        $crate::__private::__export_root_module!($crate::__private::source_module::<$source>);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_panic() -> Option<String> {
        LAST_PANIC.with(|p| p.borrow().clone())
    }

    #[test]
    fn guarded_calls_turn_panics_into_one_error_and_others_are_left_alone() {
        let err = guarded::<()>(|| panic!("inside")).unwrap_err();
        assert!(err.as_str().starts_with("panicked at "), "{err}");
        assert!(err.as_str().ends_with(": inside"), "{err}");
        assert_eq!(last_panic(), None, "the message is taken, not left behind");

        // The hook is installed now; a panic outside a guarded call goes to the previous
        // hook and leaves nothing to be mistaken for a later call's panic.
        let outside = std::panic::catch_unwind(|| panic!("outside"));
        assert!(outside.is_err());
        assert_eq!(last_panic(), None);

        // Nested scopes keep the mark until the outermost ends.
        let nested = guarded(|| {
            let inner = guarded(|| Ok(1));
            assert!(GUARDED.with(Cell::get));
            Ok(inner.unwrap())
        });
        assert_eq!(nested.unwrap(), 1);
        assert!(!GUARDED.with(Cell::get));
        assert_eq!(
            guarded::<()>(|| Err("plain error".into()))
                .unwrap_err()
                .as_str(),
            "plain error"
        );
    }
}
