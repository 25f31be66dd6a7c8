//! `stage-host new` creates crates that build and pass their tests outside the workspace, and
//! `stage-host harness` runs them (and the example stages) on JSON records without a cluster;
//! every bad argument ends with a clear error and its exit code.

use e2e_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXIT_RECORDS_FAILED: i32 = 1;
const EXIT_BAD_CONFIG: i32 = 2;
const EXIT_BAD_PLUGIN: i32 = 3;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn assert_code(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    assert!(
        stderr.contains(needle),
        "stderr lacks {needle:?}:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect()
}

/// Runs cargo in a scaffolded crate, with a target directory of its own (the outer `cargo
/// test` may hold the workspace's) and the workspace's lock file, so the versions are the
/// ones CI already fetched.
fn cargo(crate_dir: &Path, args: &[&str]) {
    std::fs::copy(repo_root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", scaffold_target())
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo {args:?} in {}",
        crate_dir.display()
    );
}

fn scaffold_target() -> PathBuf {
    build_dir().parent().unwrap().join("scaffold-check")
}

#[test]
fn new_stage_and_source_build_test_and_run_in_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    // `--dir` is where the crate goes: the crate is `<dir>/<name>`.
    let stage_dir = dir.path().join("word-count");
    let out = stage_host_output(&["new", "word-count", "--dir", s(dir.path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let source_dir = dir.path().join("ticker");
    let out = stage_host_output(&["new", "ticker", "--source", "--dir", s(dir.path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for crate_dir in [&stage_dir, &source_dir] {
        cargo(crate_dir, &["test"]);
        cargo(crate_dir, &["build"]);
    }
    let stage_lib = scaffold_target().join("debug/libword_count.so");
    let source_lib = scaffold_target().join("debug/libticker.so");

    let inspect = stage_host_output(&["inspect", s(&stage_lib), "--json"]);
    assert!(inspect.status.success());
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("word_count_out"));

    let out = stage_host_output(&[
        "harness",
        "--plugin",
        s(&stage_lib),
        "--input",
        s(&stage_dir.join("records.json")),
        "--config-json",
        r#"{"uppercase": true}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["value"]["text"], "HELLO");
    assert_eq!(lines[1]["value"]["length"], 5);

    let out = stage_host_output(&["harness", "--plugin", s(&source_lib), "--max-records", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["key"], "ticker_2");
    assert_eq!(lines[2]["value"]["n"], 2);

    // A failing record: printed with its kind, the others still run, exit code 1.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"id\": \"\", \"text\": \"x\"}\n{\"id\": \"3\"}\n").unwrap();
    let out = stage_host_output(&["harness", "--plugin", s(&stage_lib), "--input", s(&bad)]);
    assert_code(&out, EXIT_RECORDS_FAILED, "1 of 2 records failed");
    let lines = json_lines(&out);
    assert!(lines
        .iter()
        .any(|l| l["failed"] == "transform" && l["input"] == 0));
    assert!(lines.iter().any(|l| l["value"]["id"] == "3"));
}

#[test]
fn harness_runs_the_example_stage_with_schema_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.json");
    std::fs::write(
        &input,
        r#"[{"postid": "p1", "title": "t"}, {"postid": "p2"}]"#,
    )
    .unwrap();
    let out = stage_host_output(&[
        "harness",
        "--plugin",
        s(&plugin("stage-two")),
        "--input",
        s(&input),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["value"]["postid"], "p2");
    assert!(lines[0]["value"]["ppm"].is_number());

    // Written with an older writer schema ({postid} only): resolved to the reader schema.
    let writer = dir.path().join("old.avsc");
    std::fs::write(
        &writer,
        r#"{"type":"record","name":"test_stage_one_topic_value","fields":[{"name":"postid","type":["string"]}]}"#,
    )
    .unwrap();
    let out = stage_host_output(&[
        "harness",
        "--plugin",
        s(&plugin("stage-two")),
        "--input",
        s(&input),
        "--input-schema",
        s(&writer),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out).len(), 2);

    // --max-records stops a stage after its first N input records, as it does a source.
    let out = stage_host_output(&[
        "harness",
        "--plugin",
        s(&plugin("stage-two")),
        "--input",
        s(&input),
        "--max-records",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["value"]["postid"], "p1");
}

#[test]
fn inspect_prints_whole_lines_as_text_and_as_json() {
    let stage_two = plugin("stage-two");
    for json in [false, true] {
        let mut args = vec!["inspect", s(&stage_two)];
        if json {
            args.push("--json");
        }
        let out = stage_host_output(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.ends_with('\n'), "json {json}: {stdout:?}");
        if json {
            let spec: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(spec["name"], "stage-two");
        }
    }
}

#[test]
fn harness_and_new_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let stage_two = plugin("stage-two");
    let records = dir.path().join("r.json");
    std::fs::write(&records, "{\"postid\": \"p\"}\n{oops\n").unwrap();
    assert_code(
        &stage_host_output(&["harness", "--plugin", s(&stage_two), "--input", s(&records)]),
        EXIT_BAD_CONFIG,
        "line 2",
    );
    std::fs::write(&records, "{\"nope\": 1}\n").unwrap();
    assert_code(
        &stage_host_output(&["harness", "--plugin", s(&stage_two), "--input", s(&records)]),
        EXIT_BAD_CONFIG,
        "record 0: does not fit the schema",
    );
    assert_code(
        &stage_host_output(&[
            "harness",
            "--plugin",
            s(&plugin("stage-three")),
            "--input",
            s(&records),
        ]),
        EXIT_BAD_CONFIG,
        "declares no input schema: pass --input-schema",
    );
    assert_code(
        &stage_host_output(&["harness", "--plugin", s(&stage_two)]),
        EXIT_BAD_CONFIG,
        "--input",
    );
    assert_code(
        &stage_host_output(&[
            "harness",
            "--plugin",
            "/nonexistent/libx.so",
            "--input",
            s(&records),
        ]),
        EXIT_BAD_PLUGIN,
        "cannot load plugin",
    );
    assert_code(
        &stage_host_output(&[
            "harness",
            "--plugin",
            s(&stage_two),
            "--input",
            "/nonexistent.json",
        ]),
        EXIT_BAD_CONFIG,
        "cannot read /nonexistent.json",
    );
    assert_code(
        &stage_host_output(&[
            "harness",
            "--plugin",
            s(&stage_two),
            "--input",
            s(&records),
            "--config-json",
            "{bad",
        ]),
        EXIT_BAD_CONFIG,
        "--config-json is not valid JSON",
    );

    assert_code(
        &stage_host_output(&["new", "Bad Name", "--dir", s(&dir.path().join("x"))]),
        EXIT_BAD_CONFIG,
        "invalid plugin name",
    );
    std::fs::create_dir(dir.path().join("ok")).unwrap();
    std::fs::write(dir.path().join("ok/keep"), "").unwrap();
    assert_code(
        &stage_host_output(&["new", "ok", "--dir", s(dir.path())]),
        EXIT_BAD_CONFIG,
        "not empty",
    );
    assert_code(
        &stage_host_output(&[
            "new",
            "ok",
            "--dir",
            s(&dir.path().join("y")),
            "--plugin-api-path",
            "/nonexistent",
        ]),
        EXIT_BAD_CONFIG,
        "plugin-api not found",
    );
}
