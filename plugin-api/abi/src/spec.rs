//! What a stage declares about itself: its topics, group, output topic settings and schemas.
//!
//! The spec crosses the plugin boundary once, as JSON, when the host loads the library, so
//! `stage-host inspect` can print it without constructing the stage or touching Kafka.

use serde::{Deserialize, Serialize};

/// Whether a plugin is a transforming stage or a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Consumes an input topic and produces to an output topic.
    Stage,
    /// Only produces.
    Source,
}

/// Settings for creating the output topic when it does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
}

/// Everything a stage declares about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpec {
    /// Stage name, used in logs, metrics and dead-letter headers.
    pub name: String,
    /// The plugin's own version (by convention the crate version).
    pub version: String,
    /// Stage or source; filled in by the export macro.
    pub kind: StageKind,
    /// Topic a stage consumes (`None` for sources).
    pub input_topic: Option<String>,
    /// Consumer group id a stage consumes in (`None` for sources).
    pub group_id: Option<String>,
    /// The topic the stage produces to, and how to create it.
    pub output_topic: TopicSpec,
    /// Avro schema (JSON) of output values, registered under `<output topic>-value`.
    pub output_value_schema: String,
    /// Avro schema (JSON) input values are read as. `None` reads them as the writer wrote them
    /// (the schema is looked up in the registry by the id each record carries).
    pub input_value_schema: Option<String>,
    /// Avro schema of output keys, registered under `<output topic>-key`. `None`: keys are
    /// plain bytes.
    pub output_key_schema: Option<String>,
    /// Whether input keys carry Confluent framing (a key schema) that the host should strip.
    pub input_key_framed: bool,
}

impl StageSpec {
    /// Starts the spec of a transforming stage.
    ///
    /// ```
    /// use plugin_abi::StageSpec;
    /// let spec = StageSpec::stage("enrich", "0.1.0")
    ///     .input("posts", "enrich_g1")
    ///     .output("posts_enriched", 2, 1)
    ///     .output_schema(r#"{"type":"record","name":"r","fields":[]}"#);
    /// assert_eq!(spec.input_topic.as_deref(), Some("posts"));
    /// ```
    pub fn stage(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self::new(name.into(), version.into(), StageKind::Stage)
    }

    /// Starts the spec of a source stage.
    pub fn source(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self::new(name.into(), version.into(), StageKind::Source)
    }

    fn new(name: String, version: String, kind: StageKind) -> Self {
        StageSpec {
            name,
            version,
            kind,
            input_topic: None,
            group_id: None,
            output_topic: TopicSpec {
                name: String::new(),
                partitions: 1,
                replication_factor: 1,
            },
            output_value_schema: String::new(),
            input_value_schema: None,
            output_key_schema: None,
            input_key_framed: false,
        }
    }

    /// Sets the input topic and consumer group.
    pub fn input(mut self, topic: impl Into<String>, group_id: impl Into<String>) -> Self {
        self.input_topic = Some(topic.into());
        self.group_id = Some(group_id.into());
        self
    }

    /// Sets the output topic and the partitions and replication factor to create it with.
    pub fn output(mut self, topic: impl Into<String>, partitions: i32, replication: i16) -> Self {
        self.output_topic = TopicSpec {
            name: topic.into(),
            partitions,
            replication_factor: replication,
        };
        self
    }

    /// Sets the output value schema (Avro JSON; `include_str!` a file from `schemas/`).
    pub fn output_schema(mut self, schema_json: impl Into<String>) -> Self {
        self.output_value_schema = schema_json.into();
        self
    }

    /// Sets the reader schema input values are resolved to.
    pub fn input_schema(mut self, schema_json: impl Into<String>) -> Self {
        self.input_value_schema = Some(schema_json.into());
        self
    }

    /// Declares an Avro key schema for output keys (registered under `<topic>-key`).
    pub fn output_key_schema(mut self, schema_json: impl Into<String>) -> Self {
        self.output_key_schema = Some(schema_json.into());
        self
    }

    /// Declares that input keys carry Confluent framing, which the host strips.
    pub fn framed_input_keys(mut self) -> Self {
        self.input_key_framed = true;
        self
    }
}
