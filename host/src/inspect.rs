//! `stage-host inspect`: what a plugin declares, without connecting to anything.

use plugin_host::{Plugin, StageKind, PLUGIN_API_VERSION};
use std::fmt::Write;

/// Renders the plugin's spec as text or JSON.
pub fn render(plugin: &Plugin, json: bool) -> String {
    let spec = plugin.spec();
    if json {
        let mut value = serde_json::to_value(spec).expect("a spec serializes");
        value["plugin_api_version"] = PLUGIN_API_VERSION.into();
        value["path"] = plugin.path().display().to_string().into();
        // A line like every other output, so a shell prompt or `>> file` does not run on.
        return serde_json::to_string_pretty(&value).expect("JSON serializes") + "\n";
    }
    let mut text = String::new();
    let kind = match spec.kind {
        StageKind::Stage => "stage",
        StageKind::Source => "source",
    };
    let _ = writeln!(text, "plugin:        {}", plugin.path().display());
    let _ = writeln!(text, "name:          {}", spec.name);
    let _ = writeln!(text, "version:       {}", spec.version);
    let _ = writeln!(text, "kind:          {kind}");
    let _ = writeln!(text, "plugin API:    {PLUGIN_API_VERSION}");
    if let Some(topic) = &spec.input_topic {
        let _ = writeln!(text, "input topic:   {topic}");
    }
    if let Some(group) = &spec.group_id {
        let _ = writeln!(text, "group id:      {group}");
    }
    let _ = writeln!(
        text,
        "output topic:  {} (partitions {}, replication factor {})",
        spec.output_topic.name, spec.output_topic.partitions, spec.output_topic.replication_factor
    );
    let _ = writeln!(
        text,
        "output schema: {}",
        compact(&spec.output_value_schema)
    );
    if let Some(schema) = &spec.input_value_schema {
        let _ = writeln!(text, "input schema:  {}", compact(schema));
    }
    if let Some(schema) = &spec.output_key_schema {
        let _ = writeln!(text, "key schema:    {}", compact(schema));
    }
    text
}

fn compact(schema: &str) -> String {
    serde_json::from_str::<serde_json::Value>(schema)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| schema.to_string())
}
