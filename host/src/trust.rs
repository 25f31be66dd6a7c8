//! A plugin is native code that runs with the host's privileges. Before loading one, refuse
//! a file that someone other than its owner could have replaced: one that is group- or
//! world-writable, or that lies in a directory others can write. An optional sha256 pin
//! refuses any file but the one deployed.

use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const GROUP_OR_OTHER_WRITE: u32 = 0o022;

/// Checks `path` (and, when given, its sha256) before it is loaded.
pub fn check_plugin_file(path: &Path, sha256_pin: Option<&str>) -> Result<(), String> {
    let refuse = |why: String| Err(format!("refusing to load plugin {}: {why}", path.display()));
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // A missing file is reported by the loader, with the path and the OS's words.
        Err(_) => return Ok(()),
    };
    if meta.permissions().mode() & GROUP_OR_OTHER_WRITE != 0 {
        return refuse(format!(
            "the file is writable by others (mode {:o}); chmod go-w it",
            meta.permissions().mode() & 0o777
        ));
    }
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if let Some(dir) = dir {
        if let Ok(dir_meta) = std::fs::metadata(&dir) {
            if dir_meta.permissions().mode() & GROUP_OR_OTHER_WRITE != 0 {
                return refuse(format!(
                    "its directory {} is writable by others (mode {:o}), so the file could be replaced",
                    dir.display(),
                    dir_meta.permissions().mode() & 0o7777
                ));
            }
        }
    }
    if let Some(pin) = sha256_pin {
        let actual =
            sha256_of(path).map_err(|e| format!("cannot read plugin {}: {e}", path.display()))?;
        if !actual.eq_ignore_ascii_case(pin.trim()) {
            return refuse(format!("its sha256 is {actual}, not the pinned {pin}"));
        }
    }
    Ok(())
}

/// The hex sha256 of a file.
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn refuses_files_and_directories_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let file = dir.path().join("libx.so");
        std::fs::write(&file, b"x").unwrap();
        set_mode(&file, 0o644);
        assert_eq!(check_plugin_file(&file, None), Ok(()));

        set_mode(&file, 0o666);
        assert!(check_plugin_file(&file, None)
            .unwrap_err()
            .contains("writable by others"));
        set_mode(&file, 0o644);

        set_mode(dir.path(), 0o777);
        assert!(check_plugin_file(&file, None)
            .unwrap_err()
            .contains("its directory"));
        set_mode(dir.path(), 0o755);
    }

    #[test]
    fn enforces_the_sha256_pin() {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let file = dir.path().join("libx.so");
        std::fs::write(&file, b"abc").unwrap();
        set_mode(&file, 0o644);
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(check_plugin_file(&file, Some(abc)), Ok(()));
        assert!(check_plugin_file(&file, Some(&abc.replace('b', "c")))
            .unwrap_err()
            .contains("not the pinned"));
    }
}
