//! Every bad input to `stage-host` ends in one clear error line naming the cause, a non-zero
//! exit code saying what kind of failure it was, no panic backtrace, and no committed offset
//! past a record that was not processed.

use e2e_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const EXIT_RUN_FAILED: i32 = 1;
const EXIT_BAD_CONFIG: i32 = 2;
const EXIT_BAD_PLUGIN: i32 = 3;
const EXIT_UNREACHABLE: i32 = 4;
const TIMEOUT: Duration = Duration::from_secs(60);

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

// ---- plugin files ----

#[test]
fn a_file_that_is_not_a_shared_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("libnot_a_plugin.so");
    std::fs::write(&file, "this is text, not ELF").unwrap();
    let done = run_stage_host(&["--plugin", path_str(&file)], TIMEOUT);
    done.assert_failed_with(EXIT_BAD_PLUGIN, &["cannot load plugin", path_str(&file)]);
}

#[test]
fn a_missing_file_is_refused() {
    let done = run_stage_host(&["--plugin", "/nonexistent/libstage.so"], TIMEOUT);
    done.assert_failed_with(
        EXIT_BAD_PLUGIN,
        &["/nonexistent/libstage.so", "No such file"],
    );
}

#[test]
fn a_library_without_the_plugin_entry_point_is_refused() {
    // Any real shared library that is not a plugin: the C math library is on every machine.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libm.so.6 exists");
    let done = run_stage_host(&["--plugin", path_str(&libm)], TIMEOUT);
    done.assert_failed_with(
        EXIT_BAD_PLUGIN,
        &["not a stage plugin", "no plugin entry point"],
    );
    let inspect = stage_host_output(&["inspect", path_str(&libm)]);
    assert_eq!(inspect.status.code(), Some(EXIT_BAD_PLUGIN));
}

/// Builds a stage against a copy of plugin-api (with the plugin-abi inside it, whose
/// `PLUGIN_API_VERSION` is made one higher) in a workspace of its own (same dependency
/// versions through the copied Cargo.lock).
fn build_incompatible_plugin() -> PathBuf {
    let root = repo_root();
    let work = tempfile::tempdir().unwrap().keep();
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    copy(&root.join("plugin-api"), &work.join("plugin-api"));
    // plugin-api's optional dependency (feature `linked`) must resolve too.
    std::fs::create_dir_all(work.join("host")).unwrap();
    copy(
        &root.join("host/plugin-host"),
        &work.join("host/plugin-host"),
    );
    std::fs::copy(root.join("Cargo.lock"), work.join("Cargo.lock")).unwrap();
    // The workspace manifest, with only the two crates of this build as members (their path
    // dependencies join as members of their own).
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").unwrap();
    let end = start + manifest[start..].find(']').unwrap() + 1;
    let manifest = format!(
        "{}members = [\"plugin-api\", \"plugin\"]{}",
        &manifest[..start],
        &manifest[end..]
    );
    std::fs::write(work.join("Cargo.toml"), manifest).unwrap();
    let lib_rs = work.join("plugin-api/abi/src/lib.rs");
    let api = std::fs::read_to_string(&lib_rs).unwrap();
    let marker = "pub const PLUGIN_API_VERSION: u32 = ";
    let at = api.find(marker).expect("PLUGIN_API_VERSION is declared") + marker.len();
    let semi = at + api[at..].find(';').unwrap();
    let current: u32 = api[at..semi].trim().parse().unwrap();
    std::fs::write(
        &lib_rs,
        format!("{}{}{}", &api[..at], current + 1, &api[semi..]),
    )
    .unwrap();

    std::fs::create_dir_all(work.join("plugin/src")).unwrap();
    std::fs::write(
        work.join("plugin/Cargo.toml"),
        "[package]\nname = \"future-stage\"\nversion = \"9.0.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nplugin-api.workspace = true\nserde.workspace = true\n",
    )
    .unwrap();
    std::fs::write(
        work.join("plugin/src/lib.rs"),
        r##"
use plugin_api::{BoxError, Config, Emitter, GenericRecord, Record, Stage, StageSpec};
struct Future;
impl Stage for Future {
    type Input = GenericRecord;
    type Output = GenericRecord;
    fn spec() -> StageSpec {
        StageSpec::stage("future", "9.0.0").input("in", "g").output("out", 1, 1)
            .output_schema(r#"{"type":"record","name":"r","fields":[]}"#)
    }
    fn new(_: &Config) -> Result<Self, BoxError> { Ok(Future) }
    fn transform(&mut self, r: Record<'_, GenericRecord>, out: &mut Emitter<'_, GenericRecord>) -> Result<(), BoxError> {
        out.emit(r.value)?; Ok(())
    }
}
plugin_api::export_stage!(Future);
"##,
    )
    .unwrap();
    // A target directory of its own: the outer `cargo test` may hold the workspace's lock.
    let target = build_dir().parent().unwrap().join("incompatible-plugin");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "future-stage", "--manifest-path"])
        .arg(work.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the incompatible plugin failed");
    target.join("debug/libfuture_stage.so")
}

#[test]
fn a_plugin_built_against_another_plugin_api_version_is_refused() {
    let plugin = build_incompatible_plugin();
    let done = run_stage_host(&["--plugin", path_str(&plugin)], TIMEOUT);
    done.assert_failed_with(
        EXIT_BAD_PLUGIN,
        &["speaks plugin API version 2", "this host speaks version 1"],
    );
}

// ---- configuration and construction ----

fn faulty_args<'a>(plugin: &'a str, config: &'a str) -> Vec<&'a str> {
    vec!["--plugin", plugin, "--config-json", config]
}

#[test]
fn a_constructor_that_fails_stops_the_host_before_it_connects() {
    let plugin = plugin("faulty-stage");
    let done = run_stage_host(
        &faulty_args(path_str(&plugin), r#"{"fail": "constructor_error"}"#),
        TIMEOUT,
    );
    done.assert_failed_with(
        EXIT_BAD_PLUGIN,
        &["could not be constructed", "refusing to start"],
    );
}

#[test]
fn a_constructor_that_panics_is_reported_not_propagated() {
    let plugin = plugin("faulty-stage");
    let done = run_stage_host(
        &faulty_args(path_str(&plugin), r#"{"fail": "constructor_panic"}"#),
        TIMEOUT,
    );
    done.assert_failed_with(
        EXIT_BAD_PLUGIN,
        &["panicked at", "constructor panics, as configured"],
    );
}

#[test]
fn stage_config_the_plugin_refuses_is_a_plugin_error() {
    let plugin = plugin("stage-two");
    let done = run_stage_host(&faulty_args(path_str(&plugin), r#"{"ppmm": 3}"#), TIMEOUT);
    done.assert_failed_with(EXIT_BAD_PLUGIN, &["invalid stage config", "ppmm"]);
}

#[test]
fn malformed_config_is_a_usage_error() {
    let plugin = plugin("stage-two");
    let done = run_stage_host(&faulty_args(path_str(&plugin), "[1, 2"), TIMEOUT);
    done.assert_failed_with(EXIT_BAD_CONFIG, &["--config-json", "not valid JSON"]);
    let bad_flag = stage_host_output(&["--plugin", path_str(&plugin), "-X", "novalue"]);
    assert_eq!(bad_flag.status.code(), Some(EXIT_BAD_CONFIG));
    assert!(String::from_utf8_lossy(&bad_flag.stderr).contains("expected KEY=VALUE"));
}

// ---- unreachable services ----

#[test]
fn an_unreachable_broker_is_reported_at_start_up() {
    let plugin = plugin("stage-two");
    let done = run_stage_host(
        &[
            "--plugin",
            path_str(&plugin),
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--connect-timeout-secs",
            "3",
        ],
        TIMEOUT,
    );
    done.assert_failed_with(EXIT_UNREACHABLE, &["cannot reach Kafka at 127.0.0.1:1"]);
}

#[test]
fn an_unreachable_registry_is_reported_at_start_up() {
    if !cluster_available() {
        return;
    }
    let plugin = plugin("stage-two");
    let done = run_stage_host(
        &[
            "--plugin",
            path_str(&plugin),
            "--output-topic",
            &unique("unreachable_registry_out"),
            "--schema-registry-url",
            "http://127.0.0.1:1",
        ],
        TIMEOUT,
    );
    done.assert_failed_with(
        EXIT_UNREACHABLE,
        &["Schema Registry at http://127.0.0.1:1 is unreachable"],
    );
}

// ---- records that fail under the default `fail` policy ----

/// Three good records, a bad one at offset 3 (what `bad` writes), three more good ones, in a
/// one-partition topic; runs `plugin` over them and returns how it ended and the committed
/// offset of its group.
fn run_over_bad_record(
    plugin_crate: &str,
    config: &str,
    bad: impl FnOnce(&str),
) -> (Finished, Option<i64>) {
    let input = unique("bad_in");
    let group = unique("bad_g");
    create_topic(&input, 1);
    produce_posts(&input, 0, 3);
    bad(&input);
    produce_posts(&input, 4, 3);
    let plugin = plugin(plugin_crate);
    let done = run_stage_host(
        &[
            "--plugin",
            path_str(&plugin),
            "--input-topic",
            &input,
            "--output-topic",
            &unique("bad_out"),
            "--group-id",
            &group,
            "--config-json",
            config,
        ],
        TIMEOUT,
    );
    let offset = committed(&input, &group)
        .get(&0)
        .copied()
        .filter(|o| *o >= 0);
    (done, offset)
}

fn assert_not_committed_past_the_bad_record(offset: Option<i64>) {
    if let Some(o) = offset {
        assert!(
            o <= 3,
            "committed offset {o} passes the failed record at offset 3"
        );
    }
}

#[test]
fn a_transform_that_panics_stops_the_stage_without_committing_past_it() {
    if !cluster_available() {
        return;
    }
    let (done, offset) = run_over_bad_record(
        "faulty-stage",
        r#"{"fail": "transform_panic", "every": 4}"#,
        |topic| produce_posts(topic, 3, 1),
    );
    done.assert_failed_with(
        EXIT_RUN_FAILED,
        &["panic error at", "@3", "transform panics on postid_3"],
    );
    assert_not_committed_past_the_bad_record(offset);
}

#[test]
fn a_transform_error_stops_the_stage_without_committing_past_it() {
    if !cluster_available() {
        return;
    }
    let (done, offset) = run_over_bad_record(
        "faulty-stage",
        r#"{"fail": "transform_error", "every": 4}"#,
        |topic| produce_posts(topic, 3, 1),
    );
    done.assert_failed_with(
        EXIT_RUN_FAILED,
        &["transform error at", "cannot score postid_3"],
    );
    assert_not_committed_past_the_bad_record(offset);
}

#[test]
fn a_record_without_confluent_framing_is_a_decode_error() {
    if !cluster_available() {
        return;
    }
    let (done, offset) = run_over_bad_record("stage-two", "{}", |topic| {
        produce_raw(topic, "plain", br#"{"postid": "json, not avro"}"#)
    });
    done.assert_failed_with(
        EXIT_RUN_FAILED,
        &["decode error at", "@3", "Confluent magic byte"],
    );
    assert_not_committed_past_the_bad_record(offset);
}

#[test]
fn a_record_with_an_unknown_schema_id_is_a_decode_error() {
    if !cluster_available() {
        return;
    }
    let (done, offset) = run_over_bad_record("stage-two", "{}", |topic| {
        produce_raw(topic, "unknown", &[0, 0x7f, 0xff, 0xff, 0xf0, 0, 2, b'x'])
    });
    done.assert_failed_with(
        EXIT_RUN_FAILED,
        &["decode error at", "unknown writer schema id 2147483632"],
    );
    assert_not_committed_past_the_bad_record(offset);
}

#[test]
fn an_output_that_does_not_match_the_output_schema_is_an_encode_error() {
    if !cluster_available() {
        return;
    }
    let (done, offset) = run_over_bad_record(
        "faulty-stage",
        r#"{"fail": "bad_output", "every": 4}"#,
        |topic| produce_posts(topic, 3, 1),
    );
    done.assert_failed_with(
        EXIT_RUN_FAILED,
        &[
            "encode error at",
            "@3",
            "output does not match the output schema",
        ],
    );
    assert_not_committed_past_the_bad_record(offset);
}
