//! `stage-host harness`: runs a plugin's transform on records from a JSON file and prints the
//! outputs, without a cluster.
//!
//! The records go through the real plugin boundary (the library is loaded with
//! [`Plugin::load`] and called with an [`InputBatchBuilder`]), so what the harness prints is
//! what the stage would produce: JSON is encoded to Avro with the input schema (the one given
//! with `--input-schema`, else the plugin's declared reader schema), and outputs are decoded
//! with the plugin's output schema and printed as JSON lines.

use crate::avro_json::{decode_json, encode_json};
use crate::error::HostError;
use clap::Args;
use plugin_host::OutputBuffer;
use plugin_host::StageKind;
use plugin_host::{InputBatchBuilder, OutputBufferExt, Plugin, RecordPosition};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The schema id the harness gives its input records (there is no registry).
const INPUT_SCHEMA_ID: u32 = 1;

/// `stage-host harness` options.
#[derive(Debug, Args)]
pub struct HarnessArgs {
    /// The plugin library.
    #[arg(long)]
    pub plugin: PathBuf,

    /// Input records: a JSON array of values, or one JSON value per line. Not used for a
    /// source.
    #[arg(long, required_unless_present = "max_records")]
    pub input: Option<PathBuf>,

    /// Avro schema the input records are written with (e.g. the upstream stage's output
    /// schema); required when the plugin declares no input schema.
    #[arg(long)]
    pub input_schema: Option<PathBuf>,

    /// Stage configuration as inline JSON.
    #[arg(long)]
    pub config_json: Option<String>,

    /// Stop after this many records: a source's first N outputs (default 100), a stage's
    /// first N input records (default all).
    #[arg(long)]
    pub max_records: Option<usize>,
}

/// Runs the harness, printing one JSON line per output or failure. Fails (exit 1) when any
/// record failed, so a script or CI job notices.
pub fn run(args: &HarnessArgs) -> Result<(), HostError> {
    let config: Value = match &args.config_json {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| HostError::Config(format!("--config-json is not valid JSON: {e}")))?,
        None => Value::Null,
    };
    let plugin = Plugin::load_with_config(&args.plugin, &config)
        .map_err(|e| HostError::Plugin(e.to_string()))?;
    let spec = plugin.spec().clone();
    let output_schema = crate::avro_json::parse_schema(&spec.output_value_schema)
        .map_err(|e| HostError::Plugin(format!("the plugin's output schema: {e}")))?;
    let mut stdout = std::io::stdout().lock();
    let mut print = |line: Value| {
        let _ = writeln!(stdout, "{line}");
    };
    let mut out = OutputBuffer::default();
    let mut failed = 0usize;

    if spec.kind == StageKind::Source {
        let max = args.max_records.unwrap_or(100);
        let mut source = plugin
            .new_source(&config)
            .map_err(|e| HostError::Plugin(e.to_string()))?;
        let mut produced = 0;
        while produced < max {
            let status = source
                .poll((max - produced) as u32, &mut out)
                .map_err(|e| HostError::Plugin(e.to_string()))?;
            for output in out.outputs(None) {
                print(output_line(0, output.key, &output_schema, output.value));
                produced += 1;
            }
            match status {
                plugin_host::SourceStatus::Finished => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        return Ok(());
    }

    let Some(input) = &args.input else {
        return Err(HostError::Config(
            "--input is required for a transforming stage".into(),
        ));
    };
    let writer_schema = match (&args.input_schema, &spec.input_value_schema) {
        (Some(file), _) => crate::admin::schema::read_schema(file)?,
        (None, Some(declared)) => declared.clone(),
        (None, None) => {
            return Err(HostError::Config(format!(
                "plugin {} declares no input schema: pass --input-schema with the schema the records are written with",
                spec.name
            )))
        }
    };
    let writer = crate::avro_json::parse_schema(&writer_schema)
        .map_err(|e| HostError::Config(format!("input schema: {e}")))?;
    let mut records = read_records(input)?;
    if let Some(max) = args.max_records {
        records.truncate(max);
    }

    let mut stage = plugin
        .new_stage(&config)
        .map_err(|e| HostError::Plugin(e.to_string()))?;
    stage
        .add_writer_schema(INPUT_SCHEMA_ID, &writer_schema)
        .map_err(|e| HostError::Plugin(e.to_string()))?;
    let mut batch = InputBatchBuilder::default();
    for (index, record) in records.iter().enumerate() {
        let datum = encode_json(&writer, record)
            .map_err(|e| HostError::Config(format!("{} record {index}: {e}", input.display())))?;
        let at = RecordPosition {
            partition: 0,
            offset: index as i64,
            timestamp_ms: -1,
        };
        batch.push(None, &datum, INPUT_SCHEMA_ID, at);
    }
    stage
        .process(&batch, &mut out)
        .map_err(|e| HostError::Plugin(e.to_string()))?;
    for output in out.outputs(Some(&batch)) {
        print(output_line(
            output.input_index,
            output.key,
            &output_schema,
            output.value,
        ));
    }
    for failure in out.failures() {
        failed += 1;
        print(json!({
            "input": failure.input_index,
            "failed": format!("{:?}", failure.kind).to_lowercase(),
            "message": failure.message,
        }));
    }
    if failed > 0 {
        return Err(HostError::RecordsFailed(format!(
            "{failed} of {} records failed (see the \"failed\" lines)",
            records.len()
        )));
    }
    Ok(())
}

fn output_line(
    input: usize,
    key: Option<&[u8]>,
    schema: &apache_avro::Schema,
    value: &[u8],
) -> Value {
    let key = key.map(|k| match std::str::from_utf8(k) {
        Ok(text) => json!(text),
        Err(_) => json!({ "hex": k.iter().map(|b| format!("{b:02x}")).collect::<String>() }),
    });
    match decode_json(schema, value) {
        Ok(value) => json!({"input": input, "key": key, "value": value}),
        Err(e) => json!({"input": input, "failed": "output_decode", "message": e}),
    }
}

/// Reads a JSON array of records, or JSON lines.
fn read_records(path: &Path) -> Result<Vec<Value>, HostError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HostError::Config(format!("cannot read {}: {e}", path.display())))?;
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).map_err(|e| {
            HostError::Config(format!("{} is not a JSON array: {e}", path.display()))
        });
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| {
                HostError::Config(format!("{} line {}: not JSON: {e}", path.display(), n + 1))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_as_array_or_lines_and_bad_json_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let array = dir.path().join("a.json");
        std::fs::write(&array, r#"[{"a":1},{"a":2}]"#).unwrap();
        assert_eq!(read_records(&array).unwrap().len(), 2);
        let lines = dir.path().join("l.json");
        std::fs::write(&lines, "{\"a\":1}\n\n{\"a\":2}\n").unwrap();
        assert_eq!(read_records(&lines).unwrap().len(), 2);
        std::fs::write(&lines, "{\"a\":1}\n{oops\n").unwrap();
        let err = read_records(&lines).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(err.exit_code(), crate::error::exit_code::BAD_CONFIG);
    }
}
