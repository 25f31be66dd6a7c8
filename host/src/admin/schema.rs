//! `stage-host schema register|get|list|delete|check|replace`: the Python library's
//! `SchemaRegisteryTopicClient`, over the Schema Registry's REST API.
//!
//! The subject is `<topic>-value` by default (the TopicNameStrategy every stage uses), or
//! given whole with `--subject`. `replace` is the old `update_schema` (delete the subject, then
//! register): it first asks the registry what the new schema breaks and refuses without
//! `--force`, because deleting a subject is how incompatible data ends up on a topic.

use crate::error::HostError;
use crate::settings::Connection;
use clap::{ArgGroup, Args, Subcommand};
use confluent::{RegistryError, SchemaRegistry, Verdict};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Which subject a command works on.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["topic", "subject"])))]
pub struct Subject {
    /// The topic whose value schema this is (subject `<topic>-value`).
    #[arg(long, value_parser = crate::validate::topic_arg)]
    pub topic: Option<String>,
    /// The subject, given whole.
    #[arg(long)]
    pub subject: Option<String>,
    /// With `--topic`: the key schema (subject `<topic>-key`).
    #[arg(long, requires = "topic")]
    pub key: bool,
}

impl Subject {
    /// The subject name.
    pub fn name(&self) -> String {
        match (&self.subject, &self.topic) {
            (Some(s), _) => s.clone(),
            (None, Some(t)) => format!("{t}-{}", if self.key { "key" } else { "value" }),
            (None, None) => unreachable!("clap requires --topic or --subject"),
        }
    }
}

/// Options shared by every schema command.
#[derive(Debug, Args)]
pub struct SchemaConnection {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Cluster connection (only the Schema Registry URL and auth are used).
    #[command(flatten)]
    pub connection: Connection,
}

/// What to do with schemas.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a schema (Avro JSON / .avsc file) and print its id.
    Register {
        /// The schema file.
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        subject: Subject,
        #[command(flatten)]
        conn: SchemaConnection,
    },
    /// Print a registered schema: a subject's version (default latest), or one id.
    Get {
        #[command(flatten)]
        subject: Subject,
        /// Version number, or `latest`.
        #[arg(long, default_value = "latest")]
        version: String,
        #[command(flatten)]
        conn: SchemaConnection,
    },
    /// List subjects, or with `--topic`/`--subject` that subject's versions.
    List {
        /// The topic whose value subject's versions to list.
        #[arg(long, conflicts_with = "subject")]
        topic: Option<String>,
        /// The subject whose versions to list.
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        conn: SchemaConnection,
    },
    /// Delete a subject (all versions) or one version.
    Delete {
        #[command(flatten)]
        subject: Subject,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Hard-delete (after the soft delete) so the versions cannot be restored.
        #[arg(long)]
        permanent: bool,
        #[command(flatten)]
        conn: SchemaConnection,
    },
    /// Test whether a schema is compatible with the subject, without registering it. Exits 5
    /// when it is not, printing the registry's reasons.
    Check {
        /// The schema file.
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        subject: Subject,
        #[command(flatten)]
        conn: SchemaConnection,
    },
    /// Register a schema even if incompatible, by deleting the subject first (the Python
    /// `update_schema`). Says what it breaks, and refuses an incompatible schema without
    /// `--force`.
    Replace {
        /// The schema file.
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        subject: Subject,
        /// Delete the subject and register even though existing data will not be readable
        /// with the new schema.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        conn: SchemaConnection,
    },
}

/// Runs a schema command, printing its result on stdout.
pub fn run(command: &SchemaCommand) -> Result<(), HostError> {
    match command {
        SchemaCommand::Register {
            file,
            subject,
            conn,
        } => {
            let schema = read_schema(file)?;
            let subject = subject.name();
            let id = client(conn)?.register(&subject, &schema)?;
            print(conn.json, json!({"subject": subject, "id": id}), || {
                format!("registered {subject} id {id}")
            });
        }
        SchemaCommand::Get {
            subject,
            version,
            conn,
        } => {
            let info = client(conn)?.version(&subject.name(), version)?;
            if conn.json {
                println!("{info}");
            } else {
                println!(
                    "subject {} version {} id {}",
                    info["subject"].as_str().unwrap_or(""),
                    info["version"],
                    info["id"]
                );
                println!("{}", info["schema"].as_str().unwrap_or(""));
            }
        }
        SchemaCommand::List {
            topic,
            subject,
            conn,
        } => {
            let registry = client(conn)?;
            let target = subject
                .clone()
                .or_else(|| topic.as_ref().map(|t| format!("{t}-value")));
            let listed = match &target {
                Some(s) => registry.versions(s)?,
                None => registry.subjects()?,
            };
            if conn.json {
                println!("{listed}");
            } else {
                for item in listed.as_array().into_iter().flatten() {
                    println!("{}", item.as_str().map_or(item.to_string(), str::to_string));
                }
            }
        }
        SchemaCommand::Delete {
            subject,
            version,
            permanent,
            conn,
        } => {
            let registry = client(conn)?;
            let subject = subject.name();
            let deleted = registry.delete(&subject, version.as_deref(), *permanent)?;
            print(
                conn.json,
                json!({"subject": subject, "deleted_versions": deleted}),
                || format!("deleted {subject} versions {deleted}"),
            );
        }
        SchemaCommand::Check {
            file,
            subject,
            conn,
        } => {
            let schema = read_schema(file)?;
            let subject = subject.name();
            let verdict = client(conn)?.check(&subject, &schema)?;
            print(conn.json, verdict.to_json(&subject), || {
                verdict.text(&subject)
            });
            if let Verdict::Incompatible(reasons) = verdict {
                return Err(RegistryError::Refused(format!(
                    "the schema is not compatible with {subject}: {}",
                    reasons.join("; ")
                ))
                .into());
            }
        }
        SchemaCommand::Replace {
            file,
            subject,
            force,
            conn,
        } => {
            let schema = read_schema(file)?;
            let subject = subject.name();
            let registry = client(conn)?;
            let verdict = registry.check(&subject, &schema)?;
            let reasons = match verdict {
                Verdict::Compatible | Verdict::NewSubject => {
                    // Nothing breaks: a new version is enough, no delete needed.
                    let id = registry.register(&subject, &schema)?;
                    print(
                        conn.json,
                        json!({"subject": subject, "id": id, "deleted_versions": [], "breaks": []}),
                        || {
                            format!(
                                "{} registered {subject} id {id}; nothing breaks",
                                verdict.text(&subject)
                            )
                        },
                    );
                    return Ok(());
                }
                Verdict::Incompatible(reasons) => reasons,
            };
            let versions = registry.versions(&subject)?;
            let breaks = format!(
                "records already written with {subject} versions {versions} cannot be read with the new schema: {}",
                reasons.join("; ")
            );
            if !force {
                return Err(RegistryError::Refused(format!(
                    "refusing to replace {subject}: {breaks}; pass --force to delete the subject and register anyway"
                ))
                .into());
            }
            tracing::warn!(%subject, "{breaks}");
            let deleted = registry.delete(&subject, None, false)?;
            let id = registry.register(&subject, &schema)?;
            print(
                conn.json,
                json!({"subject": subject, "id": id, "deleted_versions": deleted, "breaks": reasons}),
                || {
                    format!("replaced {subject}: deleted versions {deleted}, registered id {id}; {breaks}")
                },
            );
        }
    }
    Ok(())
}

fn print(json: bool, value: Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

/// Reads a schema file and checks it is a valid Avro schema, so a typo is an argument error
/// (exit 2) naming the file, not a registry refusal.
pub fn read_schema(file: &Path) -> Result<String, HostError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        HostError::Config(format!("cannot read schema file {}: {e}", file.display()))
    })?;
    crate::avro_json::parse_schema(&text)
        .map_err(|e| HostError::Config(format!("schema file {}: {e}", file.display())))?;
    Ok(text)
}

/// What the registry says about a candidate schema.
/// How a verdict reads, as text and as JSON.
trait VerdictText {
    fn text(&self, subject: &str) -> String;
    fn to_json(&self, subject: &str) -> Value;
}

impl VerdictText for Verdict {
    fn text(&self, subject: &str) -> String {
        match self {
            Verdict::Compatible => format!("compatible with {subject}"),
            Verdict::NewSubject => format!("compatible: {subject} has no version yet"),
            Verdict::Incompatible(r) => format!("NOT compatible with {subject}: {}", r.join("; ")),
        }
    }

    fn to_json(&self, subject: &str) -> Value {
        let reasons = match self {
            Verdict::Incompatible(r) => r.clone(),
            _ => vec![],
        };
        json!({
            "subject": subject,
            "is_compatible": !matches!(self, Verdict::Incompatible(_)),
            "new_subject": matches!(self, Verdict::NewSubject),
            "messages": reasons,
        })
    }
}

fn client(conn: &SchemaConnection) -> Result<SchemaRegistry, HostError> {
    Ok(conn.connection.registry()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_default_to_the_topic_value() {
        let s = |topic: Option<&str>, subject: Option<&str>, key| Subject {
            topic: topic.map(Into::into),
            subject: subject.map(Into::into),
            key,
        };
        assert_eq!(s(Some("posts"), None, false).name(), "posts-value");
        assert_eq!(s(Some("posts"), None, true).name(), "posts-key");
        assert_eq!(s(None, Some("custom"), false).name(), "custom");
    }

    #[test]
    fn invalid_schema_files_are_argument_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.avsc");
        std::fs::write(
            &file,
            r#"{"type":"record","name":"r","fields":[{"name":"x"}]}"#,
        )
        .unwrap();
        let err = read_schema(&file).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit_code::BAD_CONFIG);
        assert!(err.to_string().contains("bad.avsc"), "{err}");
        let missing = read_schema(&dir.path().join("nope.avsc")).unwrap_err();
        assert_eq!(missing.exit_code(), crate::error::exit_code::BAD_CONFIG);
    }
}
