//! The per-stage configuration handed to the plugin's constructor: a TOML or JSON file, or
//! inline JSON, always passed on as a JSON object.

use crate::error::one_line;
use std::path::Path;

/// Reads a TOML (`.toml`) or JSON file into a JSON value.
pub fn from_file(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read stage config {}: {e}", path.display()))?;
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    if is_toml {
        toml::from_str::<toml::Table>(&text)
            .map_err(|e| {
                format!(
                    "stage config {} is not valid TOML: {}",
                    path.display(),
                    one_line(e)
                )
            })
            .and_then(|t| serde_json::to_value(t).map_err(|e| e.to_string()))
    } else {
        from_json(&text).map_err(|e| format!("stage config {}: {e}", path.display()))
    }
}

/// Parses inline JSON, which must be an object.
pub fn from_json(text: &str) -> Result<serde_json::Value, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    if !value.is_object() {
        return Err("stage config must be a JSON object".into());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_files_become_json_objects() {
        let dir = std::env::temp_dir().join(format!("stage-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("c.toml");
        std::fs::write(&toml_path, "ppm = 150.0\nname = \"x\"\n").unwrap();
        assert_eq!(
            from_file(&toml_path).unwrap(),
            serde_json::json!({"ppm": 150.0, "name": "x"})
        );
        let json_path = dir.join("c.json");
        std::fs::write(&json_path, "{\"ppm\": 1}").unwrap();
        assert_eq!(
            from_file(&json_path).unwrap(),
            serde_json::json!({"ppm": 1})
        );
        std::fs::write(&toml_path, "ppm = ").unwrap();
        assert!(from_file(&toml_path)
            .unwrap_err()
            .contains("not valid TOML"));
        assert!(from_json("[1]").is_err());
    }
}
