//! Topic administration through the Kafka REST Proxy v3, bound to one of the clusters it
//! serves (the Python `ClusterAdmin`'s `get_clusters` and `select_cluster`).

use super::{NewTopic, TopicAdmin, TopicError, TopicInfo};
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
        Ok(Some(topic.into()))
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
