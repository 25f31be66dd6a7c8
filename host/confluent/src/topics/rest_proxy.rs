//! Topic administration through the Kafka REST Proxy v3, bound to one of the clusters it
//! serves (the Python `ClusterAdmin`'s `get_clusters` and `select_cluster`).
//!
//! v3 gives a partition's leader and replicas as links: `describe` reads the topic's partitions
//! and each partition's replicas (broker id, leader, in sync), so its detail matches the Admin
//! API's.

use super::{NewTopic, PartitionInfo, TopicAdmin, TopicError, TopicInfo};
use crate::http::{self, ErrorAnswer};
use crate::Failure;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// A REST Proxy bound to one of its clusters.
pub struct RestProxy {
    base: String,
    cluster: String,
    http: Client,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct Cluster {
    cluster_id: String,
}

#[derive(Deserialize)]
struct Topic {
    topic_name: String,
    partitions_count: usize,
    replication_factor: usize,
}

#[derive(Deserialize)]
struct Partition {
    partition_id: i32,
}

#[derive(Deserialize)]
struct Replica {
    broker_id: i32,
    is_leader: bool,
    is_in_sync: bool,
}

/// A partition as the Admin API describes it, from its v3 replicas; `leader` is -1 when no
/// replica leads (librdkafka's value for a partition without a leader).
fn partition_info(partition_id: i32, replicas: &[Replica]) -> PartitionInfo {
    PartitionInfo {
        id: partition_id,
        leader: replicas
            .iter()
            .find(|r| r.is_leader)
            .map_or(-1, |r| r.broker_id),
        replicas: replicas.iter().map(|r| r.broker_id).collect(),
        isr: replicas
            .iter()
            .filter(|r| r.is_in_sync)
            .map(|r| r.broker_id)
            .collect(),
    }
}

impl From<Topic> for TopicInfo {
    fn from(t: Topic) -> Self {
        TopicInfo {
            name: t.topic_name,
            partitions: t.partitions_count,
            replication_factor: t.replication_factor,
            partition_detail: vec![],
        }
    }
}

/// The REST Proxy's code for any request Kafka refused as bad: "Topic already exists", but
/// also an invalid name, partition count or setting. Only a topic that is there afterwards
/// makes it "already exists".
const KAFKA_BAD_REQUEST: i64 = 40002;

impl RestProxy {
    /// The ids of the clusters the proxy at `url` serves.
    pub fn cluster_ids(url: &str, timeout: Duration) -> Result<Vec<String>, TopicError> {
        let http = http::client(timeout, None).map_err(TopicError::Refused)?;
        list_clusters(&http, url.trim_end_matches('/'))
    }

    /// Binds to `cluster`, or to the proxy's first cluster; an unknown id is refused, naming
    /// the ones there are.
    pub fn connect(
        url: &str,
        cluster: Option<&str>,
        timeout: Duration,
    ) -> Result<RestProxy, TopicError> {
        let base = url.trim_end_matches('/');
        let http = http::client(timeout, None).map_err(TopicError::Refused)?;
        let ids = list_clusters(&http, base)?;
        let cluster = match cluster {
            Some(wanted) if ids.iter().any(|id| id == wanted) => wanted.to_string(),
            Some(wanted) => {
                return Err(TopicError::Refused(format!(
                    "the Kafka REST Proxy at {url} serves no cluster {wanted} (it serves: {})",
                    ids.join(", ")
                )))
            }
            None => ids.into_iter().next().ok_or_else(|| {
                TopicError::Refused(format!("the Kafka REST Proxy at {url} lists no cluster"))
            })?,
        };
        Ok(RestProxy {
            base: base.to_string(),
            cluster,
            http,
        })
    }

    /// The cluster this proxy is bound to.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn topics_url(&self) -> String {
        format!(
            "{}/v3/clusters/{}/topics",
            self.base,
            http::segment(&self.cluster)
        )
    }

    fn topic_url(&self, topic: &str) -> String {
        format!("{}/{}", self.topics_url(), http::segment(topic))
    }

    /// Leader, replicas and in-sync replicas of each of `topic`'s partitions, by id.
    fn partition_detail(&self, topic: &str) -> Result<Vec<PartitionInfo>, TopicError> {
        let partitions_url = format!("{}/partitions", self.topic_url(topic));
        let what = format!("describing the partitions of {topic}");
        let list: List<Partition> = json_of(&self.base, &what, || self.http.get(&partitions_url))?;
        let mut detail = list
            .data
            .iter()
            .map(|p| {
                let url = format!("{partitions_url}/{}/replicas", p.partition_id);
                let replicas: List<Replica> = json_of(&self.base, &what, || self.http.get(&url))?;
                Ok(partition_info(p.partition_id, &replicas.data))
            })
            .collect::<Result<Vec<_>, TopicError>>()?;
        detail.sort_by_key(|p| p.id);
        Ok(detail)
    }
}

fn list_clusters(http: &Client, base: &str) -> Result<Vec<String>, TopicError> {
    let list: List<Cluster> = json_of(base, "listing clusters", || {
        http.get(format!("{base}/v3/clusters"))
    })?;
    Ok(list.data.into_iter().map(|c| c.cluster_id).collect())
}

/// Sends the request `make` builds; no answer is `Unreachable`, an error status is named by
/// its kind (a server error may heal, a client error is a refusal).
fn send(base: &str, what: &str, make: impl Fn() -> RequestBuilder) -> Result<Response, TopicError> {
    let response = make()
        .send()
        .map_err(|e| unreachable(base, http::no_answer(&e)))?;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_FOUND {
        return Ok(response);
    }
    refusal(base, what, ErrorAnswer::read(response))
}

fn refusal<T>(base: &str, what: &str, answer: ErrorAnswer) -> Result<T, TopicError> {
    Err(match answer.failure() {
        Failure::Unreachable => unreachable(base, format!("{what}: answered {answer}")),
        Failure::Refused => {
            TopicError::Refused(format!("the Kafka REST Proxy refused {what}: {answer}"))
        }
    })
}

fn unreachable(base: &str, message: String) -> TopicError {
    TopicError::Unreachable {
        servers: format!("the Kafka REST Proxy at {base}"),
        message,
    }
}

/// The JSON body of a successful answer; a 404 is a refusal.
fn json_of<T: DeserializeOwned>(
    base: &str,
    what: &str,
    make: impl Fn() -> RequestBuilder,
) -> Result<T, TopicError> {
    let response = send(base, what, make)?;
    if response.status() == StatusCode::NOT_FOUND {
        return refusal(base, what, ErrorAnswer::read(response));
    }
    response.json().map_err(|e| {
        unreachable(
            base,
            format!("{what}: the answer is not what v3 returns: {e}"),
        )
    })
}

impl TopicAdmin for RestProxy {
    fn list(&self) -> Result<Vec<TopicInfo>, TopicError> {
        let list: List<Topic> = json_of(&self.base, "listing topics", || {
            self.http.get(self.topics_url())
        })?;
        Ok(list.data.into_iter().map(TopicInfo::from).collect())
    }

    fn describe(&self, topic: &str) -> Result<Option<TopicInfo>, TopicError> {
        let what = format!("describing topic {topic}");
        let response = send(&self.base, &what, || self.http.get(self.topic_url(topic)))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let topic: Topic = response
            .json()
            .map_err(|e| unreachable(&self.base, format!("{what}: {e}")))?;
        let mut info = TopicInfo::from(topic);
        info.partition_detail = self.partition_detail(&info.name)?;
        Ok(Some(info))
    }

    fn create(&self, topic: &NewTopic<'_>) -> Result<bool, TopicError> {
        let what = format!("creating topic {}", topic.name);
        let body = json!({
            "topic_name": topic.name,
            "partitions_count": topic.partitions,
            "replication_factor": topic.replication_factor,
            "configs": topic
                .config
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect::<Vec<_>>(),
        });
        let response = self
            .http
            .post(self.topics_url())
            .json(&body)
            .send()
            .map_err(|e| unreachable(&self.base, http::no_answer(&e)))?;
        if response.status().is_success() {
            return Ok(true);
        }
        let answer = ErrorAnswer::read(response);
        if answer.code == Some(KAFKA_BAD_REQUEST) && self.describe(topic.name)?.is_some() {
            return Ok(false);
        }
        refusal(&self.base, &what, answer)
    }

    fn delete(&self, topic: &str) -> Result<bool, TopicError> {
        let what = format!("deleting topic {topic}");
        let response = send(&self.base, &what, || {
            self.http.delete(self.topic_url(topic))
        })?;
        Ok(response.status() != StatusCode::NOT_FOUND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_become_leader_replicas_and_isr() {
        let replica = |broker_id, is_leader, is_in_sync| Replica {
            broker_id,
            is_leader,
            is_in_sync,
        };
        let replicas = [
            replica(2, false, true),
            replica(1, true, true),
            replica(3, false, false),
        ];
        assert_eq!(
            partition_info(4, &replicas),
            PartitionInfo {
                id: 4,
                leader: 1,
                replicas: vec![2, 1, 3],
                isr: vec![2, 1],
            }
        );
        assert_eq!(partition_info(0, &[replica(5, false, false)]).leader, -1);
    }
}
