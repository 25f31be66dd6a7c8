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
    // Every directory that leads to the file, through a symlink or not: whoever can rename
    // an entry in any of them can put another file in the plugin's place (the rule ssh's
    // StrictModes and sudo apply).
    for dir in directories_leading_to(path) {
        if let Some(why) = replaceable_through(&dir) {
            return refuse(why);
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

/// The directories a path goes through: every ancestor of the file it resolves to, and every
/// ancestor of the (symlink's) own directory, from the root down, without repeats.
fn directories_leading_to(path: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    let mut add_ancestors = |p: &Path| {
        let mut chain: Vec<std::path::PathBuf> = p.ancestors().map(Path::to_path_buf).collect();
        chain.reverse();
        for dir in chain {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    };
    if let Some(resolved) = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        add_ancestors(&resolved);
    }
    let own_dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(own_dir) = std::fs::canonicalize(own_dir) {
        add_ancestors(&own_dir);
    }
    dirs
}

/// Why `dir` lets others replace what is in it, if it does: writable by group or others,
/// unless it is a sticky directory owned by root (like /tmp, where only an entry's owner may
/// rename or remove it).
fn replaceable_through(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    let mode = meta.mode();
    let sticky_root = mode & 0o1000 != 0 && meta.uid() == 0;
    (mode & GROUP_OR_OTHER_WRITE != 0 && !sticky_root).then(|| {
        format!(
            "the directory {} on its path is writable by others (mode {:o}), so the file could be replaced",
            dir.display(),
            mode & 0o7777
        )
    })
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
            .contains("writable by others (mode 777)"));
        set_mode(dir.path(), 0o755);
    }

    #[test]
    fn refuses_a_plugin_below_a_directory_others_can_write() {
        // A 0755 directory inside a 0777 one: the outer one lets anyone rename the inner.
        let outer = tempfile::tempdir().unwrap();
        let inner = outer.path().join("plugins");
        std::fs::create_dir(&inner).unwrap();
        set_mode(&inner, 0o755);
        let file = inner.join("libx.so");
        std::fs::write(&file, b"x").unwrap();
        set_mode(&file, 0o644);
        set_mode(outer.path(), 0o777);
        let refused = check_plugin_file(&file, None).unwrap_err();
        assert!(
            refused.contains(&outer.path().display().to_string()),
            "{refused}"
        );
        // Sticky and owned by root, like /tmp: others cannot rename what they do not own.
        set_mode(outer.path(), 0o1777);
        let sticky_root = std::fs::metadata(outer.path())
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap();
        assert_eq!(check_plugin_file(&file, None).is_ok(), sticky_root);
    }

    #[test]
    fn refuses_a_symlink_in_a_directory_others_can_write() {
        let safe = tempfile::tempdir().unwrap();
        set_mode(safe.path(), 0o755);
        let file = safe.path().join("libx.so");
        std::fs::write(&file, b"x").unwrap();
        set_mode(&file, 0o644);
        let open = tempfile::tempdir().unwrap();
        let link = open.path().join("libx.so");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        set_mode(open.path(), 0o755);
        assert_eq!(check_plugin_file(&link, None), Ok(()));
        set_mode(open.path(), 0o777);
        assert!(check_plugin_file(&link, None)
            .unwrap_err()
            .contains(&open.path().display().to_string()));
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
