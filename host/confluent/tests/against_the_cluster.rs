//! The Confluent layer against the local cluster's real services: the Schema Registry, the
//! broker's Admin API and the REST Proxy v3. The registry's side is read back with Python
//! confluent-kafka's `SchemaRegistryClient`, the topics' with Kafka's own `kafka-topics`, so
//! neither check goes through this crate.

use confluent::{
    Failure, KafkaAdmin, NewTopic, RegistryError, RegistrySettings, RestProxy, SchemaRegistry,
    TopicAdmin, TopicError, Verdict,
};
use e2e_tests::{cluster_available, kafka_cli, python, unique};
use std::process::Command;
use std::time::Duration;

const REGISTRY: &str = "http://127.0.0.1:8081";
const REST_PROXY: &str = "http://127.0.0.1:8082";
const BOOTSTRAP: &str = "127.0.0.1:9092";

const V1: &str = r#"{"type":"record","name":"Post","fields":[{"name":"postid","type":"string"}]}"#;
/// Adds a field with a default: backward compatible with V1.
const V2: &str = r#"{"type":"record","name":"Post","fields":[{"name":"postid","type":"string"},{"name":"ppm","type":"double","default":0.0}]}"#;
/// Changes a field's type: not compatible with V1.
const BROKEN: &str = r#"{"type":"record","name":"Post","fields":[{"name":"postid","type":"int"}]}"#;

/// What confluent-kafka's registry client says `subject`'s latest version is: `[version, id]`.
fn latest_with_python(subject: &str) -> serde_json::Value {
    let script = r#"
import json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient
client = SchemaRegistryClient({"url": sys.argv[1]})
latest = client.get_latest_version(sys.argv[2])
print(json.dumps([latest.version, latest.schema_id]))
"#;
    let out = Command::new(python())
        .args(["-c", script, REGISTRY, subject])
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "confluent-kafka could not read {subject}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_registry_client_registers_checks_lists_and_deletes_a_subject_that_needs_escaping() {
    if !cluster_available() {
        return;
    }
    let registry = SchemaRegistry::new(&RegistrySettings::new(REGISTRY)).unwrap();
    // A subject given whole may hold characters a URL path cannot carry as they are.
    let subject = format!("{} a/b:c-value", unique("escaped"));

    assert_eq!(registry.check(&subject, V1).unwrap(), Verdict::NewSubject);
    let id = registry.register(&subject, V1).unwrap();
    assert_eq!(
        registry.register(&subject, V1).unwrap(),
        id,
        "same schema, same id"
    );
    assert_eq!(latest_with_python(&subject), serde_json::json!([1, id]));
    let by_id = registry.schema_by_id(id).unwrap();
    assert!(by_id.contains("postid"), "{by_id}");

    assert_eq!(registry.check(&subject, V2).unwrap(), Verdict::Compatible);
    match registry.check(&subject, BROKEN).unwrap() {
        Verdict::Incompatible(reasons) => assert!(!reasons.is_empty()),
        other => panic!("a changed field type was judged {other:?}"),
    }
    let refused = registry.register(&subject, BROKEN).unwrap_err();
    assert_eq!(refused.failure(), Failure::Refused, "{refused}");
    assert!(refused.to_string().contains("409"), "{refused}");

    let v2 = registry.register(&subject, V2).unwrap();
    assert_eq!(latest_with_python(&subject), serde_json::json!([2, v2]));
    assert_eq!(
        registry.versions(&subject).unwrap(),
        serde_json::json!([1, 2])
    );
    let subjects = registry.subjects().unwrap();
    assert!(
        subjects
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == subject.as_str()),
        "{subjects}"
    );
    assert_eq!(
        registry.version(&subject, "1").unwrap()["id"],
        serde_json::json!(id)
    );

    assert_eq!(
        registry.delete(&subject, None, true).unwrap(),
        serde_json::json!([1, 2])
    );
    assert_eq!(
        registry.check(&subject, BROKEN).unwrap(),
        Verdict::NewSubject
    );
    let gone = registry.version(&subject, "latest").unwrap_err();
    assert_eq!(gone.failure(), Failure::Refused, "{gone}");
}

#[test]
fn registry_failures_are_named_by_kind() {
    if !cluster_available() {
        return;
    }
    let registry = SchemaRegistry::new(&RegistrySettings::new(REGISTRY)).unwrap();
    let unknown = registry.schema_by_id(i32::MAX as u32).unwrap_err();
    assert!(
        matches!(&unknown, RegistryError::Refused(m) if m.contains("schema id")),
        "{unknown}"
    );

    // Nothing listens on port 1: no answer, after the retries.
    let away = SchemaRegistry::new(
        &RegistrySettings::new("http://127.0.0.1:1")
            .timeout(Duration::from_secs(2))
            .retries(1),
    )
    .unwrap();
    let e = away.register("x-value", V1).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(
        e.to_string()
            .starts_with("Schema Registry at http://127.0.0.1:1 is unreachable"),
        "{e}"
    );

    let bad_ca = SchemaRegistry::new(
        &RegistrySettings::new(REGISTRY).ca_file(Some("/nonexistent/ca.pem".into())),
    );
    assert!(
        matches!(&bad_ca, Err(RegistryError::Refused(m)) if m.contains("/nonexistent/ca.pem")),
        "an unreadable CA file is named"
    );
}

/// The contract both back ends keep, checked with Kafka's own `kafka-topics`.
fn topic_admin_contract(admin: &dyn TopicAdmin, base: &str) {
    let topic = unique(base);
    let created = admin
        .create(&NewTopic {
            name: &topic,
            partitions: 3,
            replication_factor: 1,
            config: &[("cleanup.policy", "compact")],
        })
        .unwrap();
    assert!(created);
    let described = kafka_cli(&[
        "topics",
        "--bootstrap-server",
        BOOTSTRAP,
        "--describe",
        "--topic",
        &topic,
    ]);
    assert!(described.contains("PartitionCount: 3"), "{described}");
    assert!(described.contains("cleanup.policy=compact"), "{described}");

    let again = NewTopic {
        name: &topic,
        partitions: 1,
        replication_factor: 1,
        config: &[],
    };
    assert!(
        !admin.create(&again).unwrap(),
        "an existing topic is left as it is"
    );
    let info = admin.describe(&topic).unwrap().expect("the topic exists");
    assert_eq!((info.partitions, info.replication_factor), (3, 1));
    assert!(admin.exists(&topic).unwrap());
    assert!(admin.list().unwrap().iter().any(|t| t.name == topic));

    assert!(admin.delete(&topic).unwrap());
    let listed = kafka_cli(&["topics", "--bootstrap-server", BOOTSTRAP, "--list"]);
    assert!(!listed.lines().any(|l| l == topic), "{listed}");
    assert!(
        !admin.delete(&topic).unwrap(),
        "deleting a missing topic says so"
    );
    assert_eq!(admin.describe(&topic).unwrap(), None);
}

#[test]
fn both_topic_back_ends_keep_the_same_contract() {
    if !cluster_available() {
        return;
    }
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", BOOTSTRAP);
    let kafka = KafkaAdmin::new(config, Duration::from_secs(15));
    topic_admin_contract(&kafka, "admin_api");

    let proxy = RestProxy::connect(REST_PROXY, None, Duration::from_secs(15)).unwrap();
    topic_admin_contract(&proxy, "rest_proxy");

    // The Admin API reads the setting the REST Proxy wrote.
    let topic = unique("compacted_by_proxy");
    proxy
        .create(&NewTopic {
            name: &topic,
            partitions: 1,
            replication_factor: 1,
            config: &[("cleanup.policy", "compact")],
        })
        .unwrap();
    assert!(kafka.is_compacted(&topic).unwrap());
    kafka.delete(&topic).unwrap();
}

#[test]
fn topic_failures_are_named_by_kind_the_same_way_on_both_back_ends() {
    if !cluster_available() {
        return;
    }
    let away = RestProxy::connect("http://127.0.0.1:1", None, Duration::from_secs(2));
    assert!(
        matches!(&away, Err(e @ TopicError::Unreachable { .. }) if e.to_string().contains("REST Proxy")),
        "no answer is unreachable"
    );
    let cluster = RestProxy::connect(REST_PROXY, Some("no-such-cluster"), Duration::from_secs(15));
    assert!(
        matches!(&cluster, Err(TopicError::Refused(m)) if m.contains("no-such-cluster")),
        "an unknown cluster is refused, naming it"
    );
    let invalid = NewTopic {
        name: "bad name with spaces",
        partitions: 1,
        replication_factor: 1,
        config: &[],
    };
    let proxy = RestProxy::connect(REST_PROXY, None, Duration::from_secs(15)).unwrap();
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", BOOTSTRAP);
    let kafka = KafkaAdmin::new(config, Duration::from_secs(15));
    for (name, admin) in [
        ("REST Proxy", &proxy as &dyn TopicAdmin),
        ("Admin API", &kafka),
    ] {
        let e = admin.create(&invalid).unwrap_err();
        assert_eq!(e.failure(), Failure::Refused, "{name}: {e}");
    }

    let mut unreachable = rdkafka::ClientConfig::new();
    unreachable.set("bootstrap.servers", "127.0.0.1:1");
    let e = KafkaAdmin::new(unreachable, Duration::from_secs(2))
        .list()
        .unwrap_err();
    assert_eq!(e.failure(), Failure::Unreachable, "{e}");
}
