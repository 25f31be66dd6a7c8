//! The JSON shapes of Confluent's REST Proxy v3 for clusters, topics, partitions and replicas.
//!
//! Field names and `kind` strings follow Confluent's API reference so that clients written
//! for it parse these answers unchanged. Links (`self`, `related`) are absolute URLs built
//! from the base URL the client used, as Confluent's proxy does.

use serde::{Deserialize, Serialize};

use crate::kafka::{PartitionInfo, TopicInfo};

/// `metadata` of a single resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResourceMetadata {
    /// Absolute URL of the resource.
    #[serde(rename = "self")]
    pub self_url: String,
    /// Confluent resource name, e.g. `crn:///kafka=abc/topic=t`.
    pub resource_name: String,
}

/// `metadata` of a collection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectionMetadata {
    /// Absolute URL of the collection.
    #[serde(rename = "self")]
    pub self_url: String,
    /// Next page; this proxy never pages.
    pub next: Option<String>,
}

/// A link to a related resource or collection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Related {
    /// Absolute URL of the related resource.
    pub related: String,
}

/// A list answer: `{"kind": "...List", "metadata": {...}, "data": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct List<T> {
    /// For example `KafkaTopicList`.
    pub kind: String,
    /// Link to the collection.
    pub metadata: CollectionMetadata,
    /// The items.
    pub data: Vec<T>,
}

/// `KafkaCluster`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterData {
    /// Always `KafkaCluster`.
    pub kind: String,
    /// Links to this cluster.
    pub metadata: ResourceMetadata,
    /// The cluster id clients use in paths.
    pub cluster_id: String,
    /// The controller broker, when known.
    pub controller: Option<Related>,
    /// The cluster's ACLs.
    pub acls: Related,
    /// The cluster's brokers.
    pub brokers: Related,
    /// The cluster's broker configs.
    pub broker_configs: Related,
    /// The cluster's consumer groups.
    pub consumer_groups: Related,
    /// The cluster's topics.
    pub topics: Related,
    /// Partition reassignments in progress.
    pub partition_reassignments: Related,
}

/// `KafkaTopic`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicData {
    /// Always `KafkaTopic`.
    pub kind: String,
    /// Links to this topic.
    pub metadata: ResourceMetadata,
    /// The cluster the topic belongs to.
    pub cluster_id: String,
    /// Topic name.
    pub topic_name: String,
    /// Whether Kafka treats the topic as internal.
    pub is_internal: bool,
    /// Replication factor.
    pub replication_factor: i32,
    /// Number of partitions.
    pub partitions_count: i32,
    /// The topic's partitions.
    pub partitions: Related,
    /// The topic's configs.
    pub configs: Related,
    /// Partition reassignments in progress.
    pub partition_reassignments: Related,
    /// Operations the caller may perform; empty unless asked for.
    pub authorized_operations: Vec<String>,
}

/// `KafkaPartition`. Its leader and replicas are links, as in Confluent's API: a client asks
/// the replicas collection for broker ids and in-sync state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionData {
    /// Always `KafkaPartition`.
    pub kind: String,
    /// Links to this partition.
    pub metadata: ResourceMetadata,
    /// The cluster the partition belongs to.
    pub cluster_id: String,
    /// Its topic.
    pub topic_name: String,
    /// Partition id.
    pub partition_id: i32,
    /// The leader's replica, when the partition has a leader.
    pub leader: Option<Related>,
    /// The partition's replicas.
    pub replicas: Related,
    /// A reassignment in progress.
    pub reassignment: Related,
}

/// `KafkaReplica`: one broker's copy of a partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaData {
    /// Always `KafkaReplica`.
    pub kind: String,
    /// Links to this replica.
    pub metadata: ResourceMetadata,
    /// The cluster the replica belongs to.
    pub cluster_id: String,
    /// Its topic.
    pub topic_name: String,
    /// Its partition.
    pub partition_id: i32,
    /// The broker holding it.
    pub broker_id: i32,
    /// Whether this broker leads the partition.
    pub is_leader: bool,
    /// Whether this replica is in the partition's ISR.
    pub is_in_sync: bool,
    /// The broker holding it.
    pub broker: Related,
}

/// Body of `POST /v3/clusters/{cluster_id}/topics`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CreateTopicRequest {
    /// Name of the topic to create.
    pub topic_name: String,
    /// Number of partitions; the broker default when absent.
    pub partitions_count: Option<i32>,
    /// Replication factor; the broker default when absent.
    pub replication_factor: Option<i32>,
    /// Topic configs.
    #[serde(default)]
    pub configs: Vec<ConfigEntry>,
    /// Only check the request, create nothing.
    #[serde(default)]
    pub validate_only: bool,
}

/// One `{"name", "value"}` topic config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name, e.g. `cleanup.policy`.
    pub name: String,
    /// Config value; `null` is not allowed when creating a topic.
    pub value: String,
}

/// Builds the links of resources below one base URL (`http://host:port`).
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
}

impl Links {
    /// Links relative to `base`, which has no trailing slash.
    pub fn new(base: impl Into<String>) -> Self {
        let mut base = base.into();
        while base.ends_with('/') {
            base.pop();
        }
        Self { base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v3/clusters{path}", self.base)
    }

    fn related(&self, path: &str) -> Related {
        Related {
            related: self.url(path),
        }
    }

    /// `KafkaClusterList` with one cluster.
    pub fn cluster_list(&self, cluster: ClusterData) -> List<ClusterData> {
        List {
            kind: "KafkaClusterList".to_owned(),
            metadata: CollectionMetadata {
                self_url: self.url(""),
                next: None,
            },
            data: vec![cluster],
        }
    }

    /// `KafkaCluster`; `controller_id` is the broker that answered metadata, if known.
    pub fn cluster(&self, cluster_id: &str, controller_id: Option<i32>) -> ClusterData {
        let at = |suffix: &str| self.related(&format!("/{cluster_id}{suffix}"));
        ClusterData {
            kind: "KafkaCluster".to_owned(),
            metadata: ResourceMetadata {
                self_url: self.url(&format!("/{cluster_id}")),
                resource_name: format!("crn:///kafka={cluster_id}"),
            },
            cluster_id: cluster_id.to_owned(),
            controller: controller_id.map(|id| at(&format!("/brokers/{id}"))),
            acls: at("/acls"),
            brokers: at("/brokers"),
            broker_configs: at("/broker-configs"),
            consumer_groups: at("/consumer-groups"),
            topics: at("/topics"),
            partition_reassignments: at("/topics/-/partitions/-/reassignment"),
        }
    }

    /// `KafkaTopicList`.
    pub fn topic_list(&self, cluster_id: &str, topics: &[TopicInfo]) -> List<TopicData> {
        List {
            kind: "KafkaTopicList".to_owned(),
            metadata: CollectionMetadata {
                self_url: self.url(&format!("/{cluster_id}/topics")),
                next: None,
            },
            data: topics
                .iter()
                .map(|topic| self.topic(cluster_id, topic))
                .collect(),
        }
    }

    /// `KafkaTopic`.
    pub fn topic(&self, cluster_id: &str, topic: &TopicInfo) -> TopicData {
        let path = format!("/{cluster_id}/topics/{}", topic.name);
        TopicData {
            kind: "KafkaTopic".to_owned(),
            metadata: ResourceMetadata {
                self_url: self.url(&path),
                resource_name: format!("crn:///kafka={cluster_id}/topic={}", topic.name),
            },
            cluster_id: cluster_id.to_owned(),
            topic_name: topic.name.clone(),
            is_internal: topic.is_internal,
            replication_factor: topic.replication_factor,
            partitions_count: topic.partitions_count,
            partitions: self.related(&format!("{path}/partitions")),
            configs: self.related(&format!("{path}/configs")),
            partition_reassignments: self.related(&format!("{path}/partitions/-/reassignment")),
            authorized_operations: Vec::new(),
        }
    }

    /// `KafkaPartitionList` of one topic.
    pub fn partition_list(
        &self,
        cluster_id: &str,
        topic: &str,
        partitions: &[PartitionInfo],
    ) -> List<PartitionData> {
        List {
            kind: "KafkaPartitionList".to_owned(),
            metadata: CollectionMetadata {
                self_url: self.url(&format!("/{cluster_id}/topics/{topic}/partitions")),
                next: None,
            },
            data: partitions
                .iter()
                .map(|partition| self.partition(cluster_id, topic, partition))
                .collect(),
        }
    }

    /// `KafkaPartition`.
    pub fn partition(
        &self,
        cluster_id: &str,
        topic: &str,
        partition: &PartitionInfo,
    ) -> PartitionData {
        let id = partition.partition_id;
        let path = format!("/{cluster_id}/topics/{topic}/partitions/{id}");
        PartitionData {
            kind: "KafkaPartition".to_owned(),
            metadata: ResourceMetadata {
                self_url: self.url(&path),
                resource_name: format!("crn:///kafka={cluster_id}/topic={topic}/partition={id}"),
            },
            cluster_id: cluster_id.to_owned(),
            topic_name: topic.to_owned(),
            partition_id: id,
            leader: partition
                .leader
                .map(|broker| self.related(&format!("{path}/replicas/{broker}"))),
            replicas: self.related(&format!("{path}/replicas")),
            reassignment: self.related(&format!("{path}/reassignment")),
        }
    }

    /// `KafkaReplicaList` of one partition, in the broker's replica order.
    pub fn replica_list(
        &self,
        cluster_id: &str,
        topic: &str,
        partition: &PartitionInfo,
    ) -> List<ReplicaData> {
        let id = partition.partition_id;
        List {
            kind: "KafkaReplicaList".to_owned(),
            metadata: CollectionMetadata {
                self_url: self.url(&format!(
                    "/{cluster_id}/topics/{topic}/partitions/{id}/replicas"
                )),
                next: None,
            },
            data: partition
                .replicas
                .iter()
                .map(|broker| self.replica(cluster_id, topic, partition, *broker))
                .collect(),
        }
    }

    /// `KafkaReplica` of `broker`.
    pub fn replica(
        &self,
        cluster_id: &str,
        topic: &str,
        partition: &PartitionInfo,
        broker: i32,
    ) -> ReplicaData {
        let id = partition.partition_id;
        ReplicaData {
            kind: "KafkaReplica".to_owned(),
            metadata: ResourceMetadata {
                self_url: self.url(&format!(
                    "/{cluster_id}/topics/{topic}/partitions/{id}/replicas/{broker}"
                )),
                resource_name: format!(
                    "crn:///kafka={cluster_id}/topic={topic}/partition={id}/replica={broker}"
                ),
            },
            cluster_id: cluster_id.to_owned(),
            topic_name: topic.to_owned(),
            partition_id: id,
            broker_id: broker,
            is_leader: partition.leader == Some(broker),
            is_in_sync: partition.isr.contains(&broker),
            broker: self.related(&format!("/{cluster_id}/brokers/{broker}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn topic_matches_confluent_shape() {
        let links = Links::new("http://localhost:8082/");
        let topic = TopicInfo {
            name: "orders".into(),
            is_internal: false,
            partitions_count: 3,
            replication_factor: 1,
        };
        let value = serde_json::to_value(links.topic("c1", &topic)).unwrap();
        assert_eq!(
            value,
            json!({
                "kind": "KafkaTopic",
                "metadata": {
                    "self": "http://localhost:8082/v3/clusters/c1/topics/orders",
                    "resource_name": "crn:///kafka=c1/topic=orders"
                },
                "cluster_id": "c1",
                "topic_name": "orders",
                "is_internal": false,
                "replication_factor": 1,
                "partitions_count": 3,
                "partitions": {"related": "http://localhost:8082/v3/clusters/c1/topics/orders/partitions"},
                "configs": {"related": "http://localhost:8082/v3/clusters/c1/topics/orders/configs"},
                "partition_reassignments": {
                    "related": "http://localhost:8082/v3/clusters/c1/topics/orders/partitions/-/reassignment"
                },
                "authorized_operations": []
            })
        );
    }

    #[test]
    fn partitions_and_replicas_match_confluent_shape() {
        let links = Links::new("http://localhost:8082");
        let partition = PartitionInfo {
            partition_id: 1,
            leader: Some(2),
            replicas: vec![2, 3],
            isr: vec![2],
        };
        let base = "http://localhost:8082/v3/clusters/c1/topics/orders/partitions";
        let list = serde_json::to_value(links.partition_list(
            "c1",
            "orders",
            std::slice::from_ref(&partition),
        ))
        .unwrap();
        assert_eq!(list["kind"], "KafkaPartitionList");
        assert_eq!(list["metadata"]["self"], base);
        assert_eq!(
            list["data"][0],
            json!({
                "kind": "KafkaPartition",
                "metadata": {
                    "self": format!("{base}/1"),
                    "resource_name": "crn:///kafka=c1/topic=orders/partition=1"
                },
                "cluster_id": "c1",
                "topic_name": "orders",
                "partition_id": 1,
                "leader": {"related": format!("{base}/1/replicas/2")},
                "replicas": {"related": format!("{base}/1/replicas")},
                "reassignment": {"related": format!("{base}/1/reassignment")}
            })
        );
        let replicas =
            serde_json::to_value(links.replica_list("c1", "orders", &partition)).unwrap();
        assert_eq!(replicas["kind"], "KafkaReplicaList");
        assert_eq!(
            replicas["data"][1],
            json!({
                "kind": "KafkaReplica",
                "metadata": {
                    "self": format!("{base}/1/replicas/3"),
                    "resource_name": "crn:///kafka=c1/topic=orders/partition=1/replica=3"
                },
                "cluster_id": "c1",
                "topic_name": "orders",
                "partition_id": 1,
                "broker_id": 3,
                "is_leader": false,
                "is_in_sync": false,
                "broker": {"related": "http://localhost:8082/v3/clusters/c1/brokers/3"}
            })
        );
        assert_eq!(replicas["data"][0]["is_leader"], true);
        assert_eq!(replicas["data"][0]["is_in_sync"], true);
    }

    #[test]
    fn cluster_list_has_data_with_cluster_id() {
        let links = Links::new("http://h:1");
        let value = serde_json::to_value(links.cluster_list(links.cluster("c1", Some(1)))).unwrap();
        assert_eq!(value["kind"], "KafkaClusterList");
        assert_eq!(value["metadata"]["self"], "http://h:1/v3/clusters");
        assert_eq!(value["data"][0]["cluster_id"], "c1");
        assert_eq!(
            value["data"][0]["controller"]["related"],
            "http://h:1/v3/clusters/c1/brokers/1"
        );
    }

    #[test]
    fn create_request_needs_only_a_name() {
        let request: CreateTopicRequest =
            serde_json::from_value(json!({"topic_name": "t"})).unwrap();
        assert_eq!(request.partitions_count, None);
        assert!(request.configs.is_empty());
    }
}
