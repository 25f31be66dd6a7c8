"""The project's Kafka REST Proxy answers the calls the original Python library's
ClusterAdmin makes, with plain `requests` and the same request bodies: list clusters, pick
one, list topics, create a topic (JSON body with topic_name, partitions_count,
replication_factor), and read `topic_name` back. The broker's own metadata (through
confluent-kafka's AdminClient) confirms what the proxy reports.
"""

from __future__ import annotations

import json
import time

import requests
from confluent_kafka.admin import AdminClient


def topic_partitions(bootstrap_servers: str, topic: str, present: bool = True) -> int | None:
    """Partition count of `topic` from the broker's metadata, polling until it is (or is no
    longer) visible."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    deadline = time.monotonic() + 30
    while True:
        topics = admin.list_topics(timeout=10).topics
        if (topic in topics) == present:
            return len(topics[topic].partitions) if present else None
        assert time.monotonic() < deadline, f"topic {topic} present={not present} in metadata after 30s"
        time.sleep(0.1)


def test_cluster_admin_flow(rest_proxy_url, bootstrap_servers, unique_name):
    session = requests.Session()

    # get_clusters(): GET /v3/clusters, data[i].cluster_id
    clusters = session.get(f"{rest_proxy_url}/v3/clusters").json()
    assert "data" in clusters
    cluster_ids = [cluster["cluster_id"] for cluster in clusters["data"]]
    assert len(cluster_ids) == 1
    cluster = cluster_ids[0]
    topics_url = f"{rest_proxy_url}/v3/clusters/{cluster}/topics"

    # get_topics(): GET .../topics, data[i].topic_name
    before = session.get(topics_url).json()
    assert unique_name not in [topic["topic_name"] for topic in before["data"]]

    # create_topic(): POST with a JSON body encoded by hand and an explicit content type.
    body = json.dumps(
        {"topic_name": unique_name, "partitions_count": 3, "replication_factor": 1}
    ).encode("utf-8")
    response = session.post(topics_url, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["topic_name"] == unique_name
    assert created["partitions_count"] == 3
    assert topic_partitions(bootstrap_servers, unique_name) == 3

    after = session.get(topics_url).json()
    assert unique_name in [topic["topic_name"] for topic in after["data"]]

    # Creating it again: Confluent's 400 / 40002, which ClusterAdmin sees as "no topic_name".
    again = session.post(topics_url, data=body, headers={"Content-Type": "application/json"})
    assert again.status_code == 400
    assert again.json() == {"error_code": 40002, "message": f"Topic '{unique_name}' already exists."}
    assert "topic_name" not in again.json()


def test_topic_resource_and_delete(rest_proxy_url, bootstrap_servers, unique_name):
    cluster = requests.get(f"{rest_proxy_url}/v3/clusters", timeout=10).json()["data"][0]["cluster_id"]
    cluster_body = requests.get(f"{rest_proxy_url}/v3/clusters/{cluster}", timeout=10).json()
    assert cluster_body["kind"] == "KafkaCluster"
    assert cluster_body["cluster_id"] == cluster

    topic_url = f"{rest_proxy_url}/v3/clusters/{cluster}/topics/{unique_name}"
    created = requests.post(
        f"{rest_proxy_url}/v3/clusters/{cluster}/topics",
        json={"topic_name": unique_name, "partitions_count": 2, "replication_factor": 1,
              "configs": [{"name": "cleanup.policy", "value": "delete"}]},
        timeout=30,
    )
    assert created.status_code == 201, created.text

    topic = requests.get(topic_url, timeout=10).json()
    assert topic["kind"] == "KafkaTopic"
    assert topic["cluster_id"] == cluster
    assert topic["topic_name"] == unique_name
    assert topic["partitions_count"] == 2
    assert topic["replication_factor"] == 1
    assert topic["is_internal"] is False
    assert topic["metadata"]["self"].endswith(f"/v3/clusters/{cluster}/topics/{unique_name}")
    assert topic["partitions"]["related"].endswith(f"/topics/{unique_name}/partitions")
    assert topic["configs"]["related"].endswith(f"/topics/{unique_name}/configs")

    deleted = requests.delete(topic_url, timeout=30)
    assert deleted.status_code == 204, deleted.text
    topic_partitions(bootstrap_servers, unique_name, present=False)
    missing = requests.get(topic_url, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error_code"] == 40403


def test_unknown_cluster_is_404(rest_proxy_url):
    response = requests.get(f"{rest_proxy_url}/v3/clusters/no-such-cluster/topics", timeout=10)
    assert response.status_code == 404
    assert response.json()["error_code"] == 404
