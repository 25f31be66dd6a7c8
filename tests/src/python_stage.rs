//! Support for the Python stage tests: the bridge plugin, the Python library's own example
//! code (read where it lies, never copied into this repository), the tests' own stage
//! scripts, and a virtualenv with a third-party package that has native code.

use crate::{plugin, repo_root};
use std::path::PathBuf;
use std::process::Command;

/// The bridge plugin (`plugins/python-stage`).
pub fn bridge() -> PathBuf {
    plugin("python-stage")
}

/// The Python library's files (`README.md`, `examples/`, `kafka_client/`): `STAGE_HOST_SEED`,
/// or `../shared/seed` beside the repository.
pub fn seed_dir() -> PathBuf {
    let dir = std::env::var_os("STAGE_HOST_SEED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/seed"));
    assert!(
        dir.join("examples/mpp_pipeline/mpp_pipeline.py").is_file(),
        "the Python library's example code is not at {} (set STAGE_HOST_SEED)",
        dir.display()
    );
    dir
}

/// The library's example pipeline script, with StageOne, StageTwo and StageThree.
pub fn seed_pipeline_script() -> PathBuf {
    seed_dir().join("examples/mpp_pipeline/mpp_pipeline.py")
}

/// The library's per-stage app of `stage` (`stage_one`, `stage_two`, `stage_three`), laid
/// out as the library's Dockerfile lays out its image: `app.py` and `schema/` in one
/// directory (the app finds its schema beside itself). The directory, under the build
/// directory, holds symbolic links to the library's files, not copies.
pub fn seed_app(stage: &str) -> PathBuf {
    let examples = seed_dir().join("examples/docker_pipeline");
    let dir = crate::build_dir().join("python-stage-apps").join(stage);
    std::fs::create_dir_all(&dir).expect("create the app's directory");
    for (link, target) in [
        ("app.py", examples.join(stage).join("app.py")),
        ("schema", examples.join("schema")),
    ] {
        let link = dir.join(link);
        if std::fs::read_link(&link).ok().as_ref() != Some(&target) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link).expect("link the library's file");
        }
    }
    dir.join("app.py")
}

/// A stage script of `tests/python_stages/`.
pub fn test_script(file: &str) -> PathBuf {
    repo_root().join("tests/python_stages").join(file)
}

/// The bridge's config for `class` in `script`, as JSON.
pub fn config(script: &std::path::Path, class: &str) -> String {
    serde_json::json!({ "script": script, "class": class }).to_string()
}

/// The sha256 of a file, as `sha256sum` prints it.
pub fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8(out.stdout).expect("utf-8")[..64].to_string()
}

/// The Python the bridge embeds (Debian's 3.11).
pub const EMBEDDED_PYTHON: &str = "/usr/bin/python3.11";

/// A virtualenv made with the embedded Python, holding `msgpack` (a package with a C
/// extension), at `~/.cache/stage-host/python-stage-venv`; made once, reused after.
pub fn venv_with_native_package() -> PathBuf {
    let venv = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
        .join(".cache/stage-host/python-stage-venv");
    let python = venv.join("bin/python");
    let ready = || {
        python.exists()
            && Command::new(&python)
                .args(["-c", "import msgpack._cmsgpack"])
                .status()
                .is_ok_and(|s| s.success())
    };
    if !ready() {
        let made = Command::new(EMBEDDED_PYTHON)
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()
            .expect("python3.11 runs");
        assert!(made.success(), "{EMBEDDED_PYTHON} -m venv failed");
        let installed = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "msgpack==1.1.0",
            ])
            .status()
            .expect("pip runs");
        assert!(installed.success(), "pip install msgpack failed");
        assert!(
            ready(),
            "msgpack's C extension does not import in {}",
            venv.display()
        );
    }
    venv
}
