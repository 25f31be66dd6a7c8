//! `stage-host new <name> [--source]`: creates a plugin crate that builds as created: a
//! cdylib with one stage (or source), its Avro schemas, sample records for the harness, and
//! unit tests that run the transform through the real codec without Kafka.
//!
//! The crate is a workspace of its own that depends on plugin-api by path (default: the
//! plugin-api next to this host's sources), so it builds wherever it is created and speaks the
//! plugin API version of the host that created it.

use crate::error::HostError;
use clap::Args;
use std::path::{Path, PathBuf};

/// `stage-host new` options.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Crate name: lowercase letters, digits, `-` and `_`, starting with a letter.
    pub name: String,

    /// Create a source (produces only) instead of a transforming stage.
    #[arg(long)]
    pub source: bool,

    /// Create a Python stage instead: a script with a kafka_client `PipelineStage` (or, with
    /// `--source`, `SourcePipelineStage`) subclass that the Python bridge plugin runs.
    #[arg(long, conflicts_with = "plugin_api_path")]
    pub python: bool,

    /// Directory to create the crate in: the crate is `<DIR>/<name>` (default: `./<name>`).
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// Path to plugin-api (default: this repository's plugin-api).
    #[arg(long)]
    pub plugin_api_path: Option<PathBuf>,
}

const CARGO_TOML: &str = include_str!("../templates/Cargo.toml.tmpl");
const GITIGNORE: &str = include_str!("../templates/gitignore.tmpl");
const RECORDS: &str = include_str!("../templates/records.json.tmpl");
const STAGE_LIB: &str = include_str!("../templates/stage/lib.rs.tmpl");
const STAGE_INPUT: &str = include_str!("../templates/stage/input.avsc");
const STAGE_OUTPUT: &str = include_str!("../templates/stage/output.avsc");
const SOURCE_LIB: &str = include_str!("../templates/source/lib.rs.tmpl");
const SOURCE_OUTPUT: &str = include_str!("../templates/source/output.avsc");
const PYTHON_STAGE: &str = include_str!("../templates/python/stage.py.tmpl");
const PYTHON_SOURCE: &str = include_str!("../templates/python/source.py.tmpl");

/// The Python bridge plugin next to this binary (where `cargo build` puts both).
fn bridge_plugin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("libpython_stage.so")))
        .unwrap_or_else(|| PathBuf::from("libpython_stage.so"))
}

/// The plugin-api this binary was built from.
fn default_plugin_api() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .join("plugin-api")
}

/// Checks a crate name, so the error is about the name and not a cargo failure later.
pub fn validate_name(name: &str) -> Result<(), HostError> {
    let mut chars = name.chars();
    let starts_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if starts_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(HostError::Config(format!(
            "invalid plugin name `{name}`: use lowercase ASCII letters, digits, `-` and `_`, starting with a letter"
        )))
    }
}

/// `my-stage` → `MyStage`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn render(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

/// Creates the crate and returns its directory.
pub fn create(args: &NewArgs) -> Result<PathBuf, HostError> {
    validate_name(&args.name)?;
    // `--dir` is where the crate goes, as `cargo new` and the help say; the crate directory
    // is named after the crate in both cases.
    let dir = match &args.dir {
        Some(parent) => parent.join(&args.name),
        None => PathBuf::from(&args.name),
    };
    if dir.exists() && dir.read_dir().map_or(true, |mut d| d.next().is_some()) {
        return Err(HostError::Config(format!(
            "{} already exists and is not empty; choose another name or --dir",
            dir.display()
        )));
    }
    if args.python {
        return create_python(args, &dir);
    }
    let plugin_api = args
        .plugin_api_path
        .clone()
        .unwrap_or_else(default_plugin_api);
    let plugin_api = plugin_api.canonicalize().map_err(|e| {
        HostError::Config(format!(
            "plugin-api not found at {}: {e}",
            plugin_api.display()
        ))
    })?;
    if !plugin_api.join("Cargo.toml").is_file() {
        return Err(HostError::Config(format!(
            "{} has no Cargo.toml: pass --plugin-api-path with the plugin-api crate",
            plugin_api.display()
        )));
    }
    let lib_name = args.name.replace('-', "_");
    let type_name = type_name(&args.name);
    let path = plugin_api.to_string_lossy().replace('\\', "/");
    let vars = [
        ("name", args.name.as_str()),
        ("lib_name", lib_name.as_str()),
        ("type_name", type_name.as_str()),
        ("plugin_api_path", path.as_str()),
        ("input_topic", &format!("{lib_name}_in")),
        ("output_topic", &format!("{lib_name}_out")),
        ("input_record", &format!("{lib_name}_in_value")),
        ("output_record", &format!("{lib_name}_out_value")),
    ];
    let mut files = vec![("Cargo.toml", CARGO_TOML), (".gitignore", GITIGNORE)];
    if args.source {
        files.extend([
            ("src/lib.rs", SOURCE_LIB),
            ("schemas/output.avsc", SOURCE_OUTPUT),
        ]);
    } else {
        files.extend([
            ("src/lib.rs", STAGE_LIB),
            ("schemas/input.avsc", STAGE_INPUT),
            ("schemas/output.avsc", STAGE_OUTPUT),
            ("records.json", RECORDS),
        ]);
    }
    write_files(&dir, &files, &vars)?;
    Ok(dir)
}

fn write_files(dir: &Path, files: &[(&str, &str)], vars: &[(&str, &str)]) -> Result<(), HostError> {
    for (file, template) in files {
        let target = dir.join(file);
        let parent = target.parent().expect("files are inside the crate");
        std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&target, render(template, vars)))
            .map_err(|e| HostError::Config(format!("cannot write {}: {e}", target.display())))?;
    }
    Ok(())
}

/// `--python`: the stage's script (`stage.py`), its schemas in `schema/` (where the library's
/// examples keep them) and, for a stage, `records.json` for the harness.
fn create_python(args: &NewArgs, dir: &Path) -> Result<PathBuf, HostError> {
    let lib_name = args.name.replace('-', "_");
    let type_name = type_name(&args.name);
    std::fs::create_dir_all(dir)
        .map_err(|e| HostError::Config(format!("cannot create {}: {e}", dir.display())))?;
    let absolute = dir
        .canonicalize()
        .map_err(|e| HostError::Config(format!("cannot resolve {}: {e}", dir.display())))?;
    let script = absolute.join("stage.py");
    let vars = [
        ("lib_name", lib_name.as_str()),
        ("type_name", type_name.as_str()),
        ("input_topic", &format!("{lib_name}_in")),
        ("output_topic", &format!("{lib_name}_out")),
        ("input_record", &format!("{lib_name}_in_value")),
        ("output_record", &format!("{lib_name}_out_value")),
        ("bridge", &bridge_plugin().display().to_string()),
        ("script", &script.display().to_string()),
        ("dir", &absolute.display().to_string()),
    ];
    let files: Vec<(&str, &str)> = if args.source {
        vec![
            ("stage.py", PYTHON_SOURCE),
            ("schema/output.avsc", SOURCE_OUTPUT),
        ]
    } else {
        vec![
            ("stage.py", PYTHON_STAGE),
            ("schema/input.avsc", STAGE_INPUT),
            ("schema/output.avsc", STAGE_OUTPUT),
            ("records.json", RECORDS),
        ]
    };
    write_files(dir, &files, &vars)?;
    Ok(dir.to_path_buf())
}

/// Runs `stage-host new`, printing what to do next.
pub fn run(args: &NewArgs) -> Result<(), HostError> {
    let dir = create(args)?;
    let kind = if args.source { "source" } else { "stage" };
    if args.python {
        println!("created Python {kind} {} in {}", args.name, dir.display());
        println!(
            "  run it: stage-host --plugin {} --config-json '{{\"script\": \"{}\", \"class\": \"{}\"}}'",
            bridge_plugin().display(),
            dir.join("stage.py").display(),
            type_name(&args.name)
        );
        return Ok(());
    }
    println!("created {kind} plugin {} in {}", args.name, dir.display());
    println!(
        "  cd {} && cargo test && cargo build --release",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_turned_into_type_names() {
        assert!(validate_name("my-stage_2").is_ok());
        for bad in ["", "My", "2x", "a b", "a/b", "ä"] {
            assert_eq!(
                validate_name(bad).unwrap_err().exit_code(),
                crate::error::exit_code::BAD_CONFIG,
                "{bad}"
            );
        }
        assert_eq!(type_name("my-stage_2"), "MyStage2");
    }

    #[test]
    fn the_crate_is_created_inside_dir_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let args = NewArgs {
            name: "word-count".into(),
            source: false,
            python: false,
            dir: Some(dir.path().to_path_buf()),
            plugin_api_path: None,
        };
        let created = create(&args).unwrap();
        assert_eq!(created, dir.path().join("word-count"));
        assert!(created.join("Cargo.toml").is_file());
        let python = NewArgs {
            name: "py-count".into(),
            python: true,
            ..args
        };
        assert_eq!(create(&python).unwrap(), dir.path().join("py-count"));
    }

    #[test]
    fn every_placeholder_is_filled() {
        let dir = tempfile::tempdir().unwrap();
        for source in [false, true] {
            let args = NewArgs {
                name: "word-count".into(),
                source,
                python: false,
                dir: Some(dir.path().join(format!("c{source}"))),
                plugin_api_path: None,
            };
            let created = create(&args).unwrap();
            for file in ["Cargo.toml", "src/lib.rs", "schemas/output.avsc"] {
                let text = std::fs::read_to_string(created.join(file)).unwrap();
                assert!(!text.contains("{{"), "{file} keeps a placeholder");
            }
            assert!(create(&args).is_err(), "refuses a non-empty directory");
            let python = NewArgs {
                python: true,
                dir: Some(dir.path().join(format!("py{source}"))),
                ..args
            };
            let created = create(&python).unwrap();
            for file in ["stage.py", "schema/output.avsc"] {
                let text = std::fs::read_to_string(created.join(file)).unwrap();
                assert!(!text.contains("{{"), "{file} keeps a placeholder");
            }
            let script = std::fs::read_to_string(created.join("stage.py")).unwrap();
            assert!(script.contains("class WordCount("), "{script}");
        }
    }
}
