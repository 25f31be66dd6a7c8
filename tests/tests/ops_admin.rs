//! `stage-host topic ...` and `stage-host schema ...` against the local cluster, through both
//! the Admin API and the REST Proxy, checked with the independent client where it matters,
//! and every bad argument with its exit code.

use e2e_tests::*;
use std::process::Output;

const EXIT_BAD_CONFIG: i32 = 2;
const EXIT_UNREACHABLE: i32 = 4;
const EXIT_REFUSED: i32 = 5;

fn run(args: &[&str]) -> Output {
    stage_host_output(args)
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
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

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn topics_through_the_admin_api() {
    if !cluster_available() {
        return;
    }
    let topic = unique("ops_topic");
    let created = ok_json(&["topic", "create", &topic, "--partitions", "3", "--json"]);
    assert_eq!(created["status"], "created");
    // The independent client sees it, with its partitions.
    kafka_tool(&[
        "produce-raw",
        "--topic",
        &topic,
        "--key",
        "k",
        "--value-hex",
        "00",
    ]);
    let described = ok_json(&["topic", "describe", &topic, "--json"]);
    assert_eq!(described["partitions"], 3);
    assert_eq!(described["partition_detail"].as_array().unwrap().len(), 3);
    assert!(names(&ok_json(&["topic", "list", "--json"])).contains(&topic));

    assert_code(
        &run(&["topic", "create", &topic]),
        EXIT_REFUSED,
        "already exists",
    );
    let again = ok_json(&["topic", "create", &topic, "--if-not-exists", "--json"]);
    assert_eq!(again["status"], "exists");

    assert_eq!(
        ok_json(&["topic", "delete", &topic, "--json"])["status"],
        "deleted"
    );
    assert!(!names(&ok_json(&["topic", "list", "--json"])).contains(&topic));
    assert_code(
        &run(&["topic", "describe", &topic]),
        EXIT_REFUSED,
        "does not exist",
    );
    assert_code(
        &run(&["topic", "delete", &topic]),
        EXIT_REFUSED,
        "does not exist",
    );
    assert_eq!(
        ok_json(&["topic", "delete", &topic, "--if-exists", "--json"])["status"],
        "absent"
    );
}

/// This tree's REST Proxy, served on a free port against the local broker, so the test sees
/// the endpoints this tree serves (the shared one may run another build). Stopped on drop.
struct OwnRestProxy {
    child: std::process::Child,
    url: String,
}

impl OwnRestProxy {
    fn start() -> OwnRestProxy {
        let port = free_port();
        let child = std::process::Command::new(build_dir().join("kafka-rest-proxy"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("kafka-rest-proxy runs (cargo build --workspace builds it)");
        wait_for_port(port, std::time::Duration::from_secs(30), "kafka-rest-proxy");
        OwnRestProxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for OwnRestProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn topics_through_the_rest_proxy_with_cluster_selection() {
    if !cluster_available() {
        return;
    }
    let proxy = OwnRestProxy::start();
    let rest_proxy = proxy.url.as_str();
    let clusters = ok_json(&[
        "topic",
        "clusters",
        "--rest-proxy-url",
        rest_proxy,
        "--json",
    ]);
    let cluster = clusters[0].as_str().expect("one cluster").to_string();
    let topic = unique("ops_rest_topic");
    let via = [
        "--rest-proxy-url",
        rest_proxy,
        "--cluster",
        &cluster,
        "--json",
    ];
    let with = |args: &[&'static str]| -> Vec<String> {
        args.iter()
            .chain(via.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let create: Vec<String> = ["topic", "create", &topic, "--partitions", "2"]
        .iter()
        .chain(via.iter())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ok_json(&strs(&create))["status"], "created");
    // Created through the proxy, seen through the Admin API.
    assert_eq!(
        ok_json(&["topic", "describe", &topic, "--json"])["partitions"],
        2
    );
    assert!(names(&ok_json(&strs(&with(&["topic", "list"])))).contains(&topic));
    // Described through the proxy as through the Admin API: partition detail included.
    let described = ok_json(&strs(
        &[
            vec!["topic".to_string(), "describe".into(), topic.clone()],
            with(&[]),
        ]
        .concat(),
    ));
    assert_eq!(described["partitions"], 2);
    let detail = described["partition_detail"].as_array().expect("detail");
    assert_eq!(detail.len(), 2, "{described}");
    for (id, partition) in detail.iter().enumerate() {
        assert_eq!(partition["id"], id);
        assert!(partition["leader"].as_i64() >= Some(0), "{described}");
        assert_eq!(
            partition["replicas"],
            serde_json::json!([partition["leader"]])
        );
        assert_eq!(partition["isr"], partition["replicas"]);
    }
    assert_eq!(
        described,
        ok_json(&["topic", "describe", &topic, "--json"]),
        "the REST Proxy and the Admin API describe the topic alike"
    );
    assert_eq!(
        ok_json(&strs(
            &[
                vec!["topic".to_string(), "delete".into(), topic.clone()],
                with(&[])
            ]
            .concat()
        ))["status"],
        "deleted"
    );
    assert_code(
        &run(&[
            "topic",
            "list",
            "--rest-proxy-url",
            rest_proxy,
            "--cluster",
            "nope",
        ]),
        EXIT_REFUSED,
        "serves no cluster nope",
    );
}

#[test]
fn topic_bad_arguments_and_unreachable_brokers() {
    assert_code(
        &run(&["topic", "create", "bad name"]),
        EXIT_BAD_CONFIG,
        "invalid topic name",
    );
    assert_code(
        &run(&["topic", "create", "t", "--partitions", "0"]),
        EXIT_BAD_CONFIG,
        "--partitions",
    );
    assert_code(
        &run(&["topic", "frobnicate"]),
        EXIT_BAD_CONFIG,
        "unrecognized",
    );
    assert_code(
        &run(&["topic", "list", "--cluster", "c"]),
        EXIT_BAD_CONFIG,
        "--rest-proxy-url",
    );
    assert_code(
        &run(&["topic", "clusters"]),
        EXIT_BAD_CONFIG,
        "pass --rest-proxy-url",
    );
    assert_code(
        &run(&[
            "topic",
            "list",
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--connect-timeout-secs",
            "2",
        ]),
        EXIT_UNREACHABLE,
        "cannot reach Kafka",
    );
    assert_code(
        &run(&["topic", "list", "--rest-proxy-url", "http://127.0.0.1:1"]),
        EXIT_UNREACHABLE,
        "127.0.0.1:1",
    );
}

#[test]
fn schemas_register_get_list_check_replace_delete() {
    if !cluster_available() {
        return;
    }
    let topic = unique("ops_schema");
    let subject = format!("{topic}-value");
    let one = schema("stage_one.json");
    let two = schema("stage_two.json");
    let (one, two) = (one.to_str().unwrap(), two.to_str().unwrap());

    let fresh = ok_json(&[
        "schema", "check", "--topic", &topic, "--file", one, "--json",
    ]);
    assert_eq!(fresh["is_compatible"], true);
    assert_eq!(fresh["new_subject"], true);
    let id = ok_json(&[
        "schema", "register", "--topic", &topic, "--file", one, "--json",
    ])["id"]
        .as_u64()
        .unwrap();
    let got = ok_json(&["schema", "get", "--topic", &topic, "--json"]);
    assert_eq!(got["id"].as_u64(), Some(id));
    assert_eq!(got["subject"], subject.as_str());
    let subjects = ok_json(&["schema", "list", "--json"]);
    assert!(subjects.as_array().unwrap().iter().any(|s| s == &subject));
    assert_eq!(
        ok_json(&["schema", "list", "--subject", &subject, "--json"]),
        serde_json::json!([1])
    );

    // Incompatible: check and replace refuse, saying why; nothing is registered.
    let check = run(&["schema", "check", "--topic", &topic, "--file", two]);
    assert_code(&check, EXIT_REFUSED, "not compatible");
    assert!(String::from_utf8_lossy(&check.stdout).contains("NOT compatible"));
    assert_code(
        &run(&["schema", "replace", "--topic", &topic, "--file", two]),
        EXIT_REFUSED,
        "cannot be read with the new schema",
    );
    assert_eq!(
        ok_json(&["schema", "list", "--subject", &subject, "--json"]),
        serde_json::json!([1])
    );
    // With --force: the subject is deleted and the new schema registered, and it says what broke.
    let replaced = ok_json(&[
        "schema", "replace", "--topic", &topic, "--file", two, "--force", "--json",
    ]);
    assert_eq!(replaced["deleted_versions"], serde_json::json!([1]));
    assert!(!replaced["breaks"].as_array().unwrap().is_empty());
    let now = ok_json(&["schema", "get", "--subject", &subject, "--json"]);
    assert!(now["schema"].as_str().unwrap().contains("ppm"));

    ok_json(&[
        "schema",
        "delete",
        "--topic",
        &topic,
        "--permanent",
        "--json",
    ]);
    assert_code(
        &run(&["schema", "get", "--topic", &topic]),
        EXIT_REFUSED,
        "not found",
    );
}

/// The registry hard-deletes only what is soft-deleted (Confluent's two steps): a plain delete
/// followed by `--permanent` must finish the job, for a subject and for one version.
#[test]
fn a_permanent_delete_after_a_plain_delete_removes_for_good() {
    if !cluster_available() {
        return;
    }
    let one = schema("stage_one.json");
    let one = one.to_str().unwrap();

    let topic = unique("ops_schema_soft");
    let subject = format!("{topic}-value");
    ok_json(&[
        "schema", "register", "--topic", &topic, "--file", one, "--json",
    ]);
    let soft = ok_json(&["schema", "delete", "--topic", &topic, "--json"]);
    assert_eq!(soft["deleted_versions"], serde_json::json!([1]));
    let hard = ok_json(&[
        "schema",
        "delete",
        "--topic",
        &topic,
        "--permanent",
        "--json",
    ]);
    assert_eq!(hard["deleted_versions"], serde_json::json!([1]));
    // Gone for good: a permanent delete again finds nothing, and a new registration starts
    // again at version 1 (a soft-deleted subject would continue at 2).
    assert_code(
        &run(&["schema", "delete", "--topic", &topic, "--permanent"]),
        EXIT_REFUSED,
        "not found",
    );
    ok_json(&[
        "schema", "register", "--topic", &topic, "--file", one, "--json",
    ]);
    assert_eq!(
        ok_json(&["schema", "get", "--subject", &subject, "--json"])["version"],
        1
    );

    // One version: soft, then permanent.
    ok_json(&[
        "schema",
        "delete",
        "--subject",
        &subject,
        "--version",
        "1",
        "--json",
    ]);
    let hard = ok_json(&[
        "schema",
        "delete",
        "--subject",
        &subject,
        "--version",
        "1",
        "--permanent",
        "--json",
    ]);
    assert_eq!(hard["deleted_versions"], 1);
    assert_code(
        &run(&["schema", "delete", "--subject", &subject, "--permanent"]),
        EXIT_REFUSED,
        "not found",
    );
}

#[test]
fn schema_bad_arguments_and_unreachable_registry() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.avsc");
    std::fs::write(&bad, "{\"type\": \"record\"").unwrap();
    let bad = bad.to_str().unwrap();
    let one = schema("stage_one.json");
    let one = one.to_str().unwrap();
    assert_code(
        &run(&["schema", "register", "--topic", "t", "--file", bad]),
        EXIT_BAD_CONFIG,
        "bad.avsc",
    );
    assert_code(
        &run(&[
            "schema",
            "register",
            "--topic",
            "t",
            "--file",
            "/nonexistent.avsc",
        ]),
        EXIT_BAD_CONFIG,
        "cannot read schema file",
    );
    assert_code(
        &run(&["schema", "register", "--file", one]),
        EXIT_BAD_CONFIG,
        "--topic",
    );
    assert_code(
        &run(&["schema", "get", "--topic", "t", "--subject", "s"]),
        EXIT_BAD_CONFIG,
        "cannot be used with",
    );
    assert_code(
        &run(&[
            "schema",
            "list",
            "--schema-registry-url",
            "http://127.0.0.1:1",
        ]),
        EXIT_UNREACHABLE,
        "unreachable",
    );
}
