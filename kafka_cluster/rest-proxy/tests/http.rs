//! HTTP tests of every endpoint against a real broker (the local cluster's Apache Kafka, or
//! any Kafka at `BOOTSTRAP_SERVERS`).
//!
//! Without a broker they skip with a message, unless `STAGE_HOST_REQUIRE_CLUSTER` is set
//! (as in CI), where a missing broker is a failure.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use reqwest::StatusCode;
use rest_proxy::{router, AppState, KafkaAdmin, KafkaAdminConfig};
use serde_json::{json, Value};

/// A proxy served in-process on an ephemeral port, talking to the test broker.
struct Proxy {
    base: String,
    client: reqwest::Client,
}

fn bootstrap_servers() -> String {
    std::env::var("BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn broker_answers(bootstrap: &str) -> bool {
    let first = bootstrap.split(',').next().unwrap_or_default();
    let addrs: Vec<SocketAddr> = first
        .to_socket_addrs()
        .map(|addrs| addrs.collect())
        .unwrap_or_default();
    addrs
        .iter()
        .any(|addr| TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok())
}

fn cluster_required() -> bool {
    std::env::var("STAGE_HOST_REQUIRE_CLUSTER").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// Starts the proxy, or returns `None` (test skipped) when no broker answers and none is
/// required.
async fn start_proxy(test: &str) -> Option<Proxy> {
    let bootstrap = bootstrap_servers();
    if !broker_answers(&bootstrap) {
        assert!(
            !cluster_required(),
            "no Kafka broker answers at {bootstrap} and STAGE_HOST_REQUIRE_CLUSTER is set; \
             start one with `kafka_cluster/local-cluster up`"
        );
        // Written to stderr directly: libtest captures eprintln! of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no Kafka broker answers at {bootstrap} \
             (start one with `kafka_cluster/local-cluster up`)"
        );
        return None;
    }
    let admin = KafkaAdmin::new(KafkaAdminConfig::new(bootstrap)).expect("admin client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    let app = router(AppState::new(admin, base.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Some(Proxy {
        base,
        client: reqwest::Client::new(),
    })
}

impl Proxy {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn cluster_id(&self) -> String {
        let (status, body) = self.get("/v3/clusters").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"][0]["cluster_id"]
            .as_str()
            .expect("cluster_id")
            .to_owned()
    }
}

fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn assert_error(status: StatusCode, body: &Value, expected_status: StatusCode, code: u64) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error_code"], json!(code), "{body}");
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn clusters_are_listed_and_fetched() {
    let Some(proxy) = start_proxy("clusters_are_listed_and_fetched").await else {
        return;
    };
    let (status, list) = proxy.get("/v3/clusters").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["kind"], "KafkaClusterList");
    assert_eq!(
        list["metadata"]["self"],
        format!("{}/v3/clusters", proxy.base)
    );
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    let cluster_id = proxy.cluster_id().await;
    assert!(!cluster_id.is_empty());

    let (status, cluster) = proxy.get(&format!("/v3/clusters/{cluster_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cluster["kind"], "KafkaCluster");
    assert_eq!(cluster["cluster_id"], cluster_id);
    assert_eq!(
        cluster["metadata"]["resource_name"],
        format!("crn:///kafka={cluster_id}")
    );
    assert_eq!(
        cluster["topics"]["related"],
        format!("{}/v3/clusters/{cluster_id}/topics", proxy.base)
    );
}

#[tokio::test]
async fn unknown_cluster_is_404() {
    let Some(proxy) = start_proxy("unknown_cluster_is_404").await else {
        return;
    };
    for path in [
        "/v3/clusters/no-such-cluster",
        "/v3/clusters/no-such-cluster/topics",
        "/v3/clusters/no-such-cluster/topics/t",
    ] {
        let (status, body) = proxy.get(path).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, 404);
    }
    let (status, body) = proxy
        .call(
            reqwest::Method::POST,
            "/v3/clusters/no-such-cluster/topics",
            Some(json!({"topic_name": "t"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 404);
}

#[tokio::test]
async fn topic_lifecycle_create_get_list_delete() {
    let Some(proxy) = start_proxy("topic_lifecycle_create_get_list_delete").await else {
        return;
    };
    let cluster_id = proxy.cluster_id().await;
    let topics = format!("/v3/clusters/{cluster_id}/topics");
    let name = unique_topic("rest-proxy-lifecycle");
    let topic_path = format!("{topics}/{name}");

    let request = json!({"topic_name": name, "partitions_count": 3, "replication_factor": 1});
    let (status, created) = proxy
        .call(reqwest::Method::POST, &topics, Some(request.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["kind"], "KafkaTopic");
    assert_eq!(created["topic_name"], name);
    assert_eq!(created["cluster_id"], cluster_id);
    assert_eq!(created["partitions_count"], 3);
    assert_eq!(created["replication_factor"], 1);
    assert_eq!(created["is_internal"], false);
    assert_eq!(
        created["metadata"]["self"],
        format!("{}{topic_path}", proxy.base)
    );
    assert_eq!(
        created["metadata"]["resource_name"],
        format!("crn:///kafka={cluster_id}/topic={name}")
    );
    assert_eq!(
        created["partitions"]["related"],
        format!("{}{topic_path}/partitions", proxy.base)
    );
    assert_eq!(
        created["configs"]["related"],
        format!("{}{topic_path}/configs", proxy.base)
    );

    let (status, fetched) = proxy.get(&topic_path).await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["topic_name"], name);
    assert_eq!(fetched["partitions_count"], 3);

    let (status, list) = proxy.get(&topics).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["kind"], "KafkaTopicList");
    let names: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|topic| topic["topic_name"].as_str())
        .collect();
    assert!(names.contains(&name.as_str()), "{names:?}");

    let (status, body) = proxy
        .call(reqwest::Method::POST, &topics, Some(request))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, 40002);
    assert_eq!(body["message"], format!("Topic '{name}' already exists."));

    let (status, body) = proxy.call(reqwest::Method::DELETE, &topic_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);

    let (status, body) = proxy.get(&topic_path).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 40403);
    let (status, body) = proxy.call(reqwest::Method::DELETE, &topic_path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 40403);
}

#[tokio::test]
async fn topic_created_with_configs_and_defaults() {
    let Some(proxy) = start_proxy("topic_created_with_configs_and_defaults").await else {
        return;
    };
    let cluster_id = proxy.cluster_id().await;
    let topics = format!("/v3/clusters/{cluster_id}/topics");
    let name = unique_topic("rest-proxy-configs");
    let (status, created) = proxy
        .call(
            reqwest::Method::POST,
            &topics,
            Some(json!({
                "topic_name": name,
                "partitions_count": 2,
                "replication_factor": 1,
                "configs": [{"name": "cleanup.policy", "value": "delete"}]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["partitions_count"], 2);

    let name = unique_topic("rest-proxy-defaults");
    let (status, created) = proxy
        .call(
            reqwest::Method::POST,
            &topics,
            Some(json!({"topic_name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["topic_name"], name);
    assert!(
        created["partitions_count"].as_i64().unwrap_or(0) >= 1,
        "{created}"
    );
}

#[tokio::test]
async fn partitions_and_replicas_name_leaders_and_in_sync_replicas() {
    let Some(proxy) =
        start_proxy("partitions_and_replicas_name_leaders_and_in_sync_replicas").await
    else {
        return;
    };
    let cluster_id = proxy.cluster_id().await;
    let topics = format!("/v3/clusters/{cluster_id}/topics");
    let name = unique_topic("rest-proxy-partitions");
    let topic_path = format!("{topics}/{name}");
    let request = json!({"topic_name": name, "partitions_count": 2, "replication_factor": 1});
    let (status, created) = proxy
        .call(reqwest::Method::POST, &topics, Some(request))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // The topic's `partitions` link leads to them.
    let (status, list) = proxy.get(&format!("{topic_path}/partitions")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["kind"], "KafkaPartitionList");
    assert_eq!(list["metadata"]["self"], created["partitions"]["related"]);
    let partitions = list["data"].as_array().expect("data");
    assert_eq!(partitions.len(), 2, "{list}");
    for (id, partition) in partitions.iter().enumerate() {
        let path = format!("{topic_path}/partitions/{id}");
        assert_eq!(partition["kind"], "KafkaPartition");
        assert_eq!(partition["partition_id"], id);
        assert_eq!(partition["topic_name"], name);
        assert_eq!(
            partition["metadata"]["resource_name"],
            format!("crn:///kafka={cluster_id}/topic={name}/partition={id}")
        );
        assert_eq!(
            partition["replicas"]["related"],
            format!("{}{path}/replicas", proxy.base)
        );
        let (status, one) = proxy.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        assert_eq!(&one, partition);

        // One replica, the leader, in sync; the leader link points at it.
        let (status, replicas) = proxy.get(&format!("{path}/replicas")).await;
        assert_eq!(status, StatusCode::OK, "{replicas}");
        assert_eq!(replicas["kind"], "KafkaReplicaList");
        let replica = &replicas["data"][0];
        assert_eq!(replicas["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(replica["kind"], "KafkaReplica");
        assert_eq!(replica["partition_id"], id);
        assert_eq!(replica["is_leader"], true);
        assert_eq!(replica["is_in_sync"], true);
        let broker = replica["broker_id"].as_i64().expect("broker_id");
        assert_eq!(
            partition["leader"]["related"],
            format!("{}{path}/replicas/{broker}", proxy.base)
        );
        let (status, fetched) = proxy.get(&format!("{path}/replicas/{broker}")).await;
        assert_eq!(status, StatusCode::OK, "{fetched}");
        assert_eq!(&fetched, replica);
    }

    // A partition the topic does not have, a broker without a replica: 404; an unknown topic:
    // 40403, as Confluent answers.
    let (status, body) = proxy.get(&format!("{topic_path}/partitions/7")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 404);
    let (status, body) = proxy
        .get(&format!("{topic_path}/partitions/0/replicas/987654"))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 404);
    let absent = format!("{topics}/{}/partitions", unique_topic("absent"));
    let (status, body) = proxy.get(&absent).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 40403);

    let (status, body) = proxy.call(reqwest::Method::DELETE, &topic_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn unknown_topic_is_40403() {
    let Some(proxy) = start_proxy("unknown_topic_is_40403").await else {
        return;
    };
    let cluster_id = proxy.cluster_id().await;
    let path = format!(
        "/v3/clusters/{cluster_id}/topics/{}",
        unique_topic("absent")
    );
    let (status, body) = proxy.get(&path).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 40403);
    // A GET must not create the topic as a side effect.
    let (status, _) = proxy.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = proxy.call(reqwest::Method::DELETE, &path, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 40403);
}

#[tokio::test]
async fn bad_requests_are_rejected_with_json_errors() {
    let Some(proxy) = start_proxy("bad_requests_are_rejected_with_json_errors").await else {
        return;
    };
    let cluster_id = proxy.cluster_id().await;
    let topics = format!("/v3/clusters/{cluster_id}/topics");

    let (status, body) = proxy
        .call(
            reqwest::Method::POST,
            &topics,
            Some(json!({"partitions_count": 1})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, 400);

    let (status, body) = proxy
        .call(
            reqwest::Method::POST,
            &topics,
            Some(json!({"topic_name": ""})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, 400);

    let response = proxy
        .client
        .post(format!("{}{topics}", proxy.base))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error_code"], 400);

    let (status, body) = proxy.get("/v3/no-such-endpoint").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, 404);
}
