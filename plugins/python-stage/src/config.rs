//! The bridge's config: which script, which class, and where its imports come from.

use serde_json::Value;
use std::path::PathBuf;

/// What the stage's config (`--config-json`, or `config` in a pipeline file) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The Python file that defines the class (absolute, or relative to the working
    /// directory).
    pub script: PathBuf,
    /// The class to run: a `PipelineStage` or `SourcePipelineStage` subclass in the script.
    pub class: String,
    /// Directories put in front of `sys.path` (after the script's own directory).
    pub python_path: Vec<PathBuf>,
    /// A virtualenv made with the same Python as the bridge embeds, whose site-packages the
    /// stage imports from.
    pub venv: Option<PathBuf>,
}

impl BridgeConfig {
    /// Reads the config JSON, refusing unknown keys with a one-line error.
    pub fn parse(json: &str) -> Result<BridgeConfig, String> {
        let value: Value = if json.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(json)
                .map_err(|e| format!("stage config is not valid JSON: {e}"))?
        };
        let map = match value {
            Value::Object(map) => map,
            Value::Null => Default::default(),
            other => return Err(format!("stage config must be a JSON object, not {other}")),
        };
        let text = |key: &str| -> Result<Option<String>, String> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "the Python stage's `{key}` must be a non-empty string, not {other}"
                )),
            }
        };
        if let Some(unknown) = map
            .keys()
            .find(|k| !["script", "class", "python_path", "venv"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown key `{unknown}` in the Python stage's config (known: script, class, python_path, venv)"
            ));
        }
        let script = text("script")?.ok_or(
            "the Python stage's config names no script: give {\"script\": \"stage.py\", \"class\": \"MyStage\"}",
        )?;
        let class = text("class")?.ok_or(
            "the Python stage's config names no class: give {\"script\": \"stage.py\", \"class\": \"MyStage\"}",
        )?;
        let python_path = match map.get("python_path") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(one)) => vec![PathBuf::from(one)],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(PathBuf::from(s)),
                    other => Err(format!(
                        "the Python stage's `python_path` holds {other}; it takes directory names"
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "the Python stage's `python_path` must be a list of directories, not {other}"
                ))
            }
        };
        Ok(BridgeConfig {
            script: PathBuf::from(script),
            class,
            python_path,
            venv: text("venv")?.map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_script_class_and_paths() {
        let config = BridgeConfig::parse(
            r#"{"script": "s.py", "class": "StageTwo", "python_path": ["a", "b"], "venv": "v"}"#,
        )
        .unwrap();
        assert_eq!(config.script, PathBuf::from("s.py"));
        assert_eq!(config.class, "StageTwo");
        assert_eq!(config.python_path.len(), 2);
        assert_eq!(config.venv, Some(PathBuf::from("v")));
        let one = BridgeConfig::parse(r#"{"script": "s.py", "class": "C", "python_path": "a"}"#);
        assert_eq!(one.unwrap().python_path, vec![PathBuf::from("a")]);
    }

    #[test]
    fn refuses_what_it_cannot_use_in_one_line() {
        for (json, says) in [
            ("{}", "names no script"),
            ("", "names no script"),
            (r#"{"script": "s.py"}"#, "names no class"),
            (r#"{"script": "s.py", "class": 3}"#, "`class` must be"),
            (
                r#"{"script": "s.py", "class": "C", "ppm": 1}"#,
                "unknown key `ppm`",
            ),
            (
                r#"{"script": "s.py", "class": "C", "python_path": [1]}"#,
                "python_path",
            ),
            ("[1]", "must be a JSON object"),
            ("{", "not valid JSON"),
        ] {
            let err = BridgeConfig::parse(json).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
