//! The Kafka REST Proxy v3 topic API, with cluster selection (the Python `ClusterAdmin`'s
//! `get_clusters` and `select_cluster`).

use super::topic::TopicInfo;
use crate::topics::TopicError;
use serde::Deserialize;
use serde_json::json;

/// A REST Proxy bound to one of its clusters.
pub struct RestProxy {
    base: String,
    cluster: String,
    http: reqwest::blocking::Client,
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

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .expect("a reqwest client with a timeout builds")
}

fn unreachable(url: &str, e: reqwest::Error) -> TopicError {
    TopicError::Unreachable {
        servers: format!("REST Proxy {url}"),
        message: e.to_string(),
    }
}

impl RestProxy {
    /// The ids of the clusters the proxy at `url` serves.
    pub fn cluster_ids(url: &str) -> Result<Vec<String>, TopicError> {
        let base = url.trim_end_matches('/');
        let response = http()
            .get(format!("{base}/v3/clusters"))
            .send()
            .map_err(|e| unreachable(url, e))?;
        let list: List<Cluster> = checked(response, "listing clusters")?
            .json()
            .map_err(|e| unreachable(url, e))?;
        Ok(list.data.into_iter().map(|c| c.cluster_id).collect())
    }

    /// Binds to `cluster`, or to the proxy's first cluster; an unknown id is refused, naming
    /// the ones there are.
    pub fn connect(url: &str, cluster: Option<&str>) -> Result<RestProxy, TopicError> {
        let ids = Self::cluster_ids(url)?;
        let cluster = match cluster {
            Some(wanted) if ids.iter().any(|id| id == wanted) => wanted.to_string(),
            Some(wanted) => {
                return Err(TopicError::Refused(format!(
                    "the REST Proxy at {url} serves no cluster {wanted} (it serves: {})",
                    ids.join(", ")
                )))
            }
            None => ids.into_iter().next().ok_or_else(|| {
                TopicError::Refused(format!("the REST Proxy at {url} lists no cluster"))
            })?,
        };
        Ok(RestProxy {
            base: url.trim_end_matches('/').to_string(),
            cluster,
            http: http(),
        })
    }

    fn topics_url(&self) -> String {
        format!("{}/v3/clusters/{}/topics", self.base, self.cluster)
    }
}

/// Turns an error status into a refusal carrying the proxy's message.
fn checked(
    response: reqwest::blocking::Response,
    what: &str,
) -> Result<reqwest::blocking::Response, TopicError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: serde_json::Value = response.json().unwrap_or_default();
    Err(TopicError::Refused(format!(
        "REST Proxy refused {what}: {status} {}",
        body["message"].as_str().unwrap_or("")
    )))
}

impl RestProxy {
    /// All topics of the cluster.
    pub fn list(&self) -> Result<Vec<TopicInfo>, TopicError> {
        let response = self
            .http
            .get(self.topics_url())
            .send()
            .map_err(|e| unreachable(&self.base, e))?;
        let list: List<Topic> = checked(response, "listing topics")?
            .json()
            .map_err(|e| unreachable(&self.base, e))?;
        Ok(list.data.into_iter().map(TopicInfo::from).collect())
    }

    /// One topic; a 404 is "does not exist".
    pub fn describe(&self, topic: &str) -> Result<Option<TopicInfo>, TopicError> {
        let response = self
            .http
            .get(format!("{}/{topic}", self.topics_url()))
            .send()
            .map_err(|e| unreachable(&self.base, e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let topic: Topic = checked(response, &format!("describing topic {topic}"))?
            .json()
            .map_err(|e| unreachable(&self.base, e))?;
        Ok(Some(topic.into()))
    }

    /// Creates a topic; `Ok(false)` when it already exists.
    pub fn create(
        &self,
        topic: &str,
        partitions: i32,
        replication: i16,
    ) -> Result<bool, TopicError> {
        let response = self
            .http
            .post(self.topics_url())
            .json(&json!({
                "topic_name": topic,
                "partitions_count": partitions,
                "replication_factor": replication,
            }))
            .send()
            .map_err(|e| unreachable(&self.base, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        let body: serde_json::Value = response.json().unwrap_or_default();
        // 40002: "Topic already exists".
        if body["error_code"] == 40002 {
            return Ok(false);
        }
        Err(TopicError::Refused(format!(
            "REST Proxy refused to create topic {topic}: {status} {}",
            body["message"].as_str().unwrap_or("")
        )))
    }

    /// Deletes a topic; `Ok(false)` when it does not exist.
    pub fn delete(&self, topic: &str) -> Result<bool, TopicError> {
        let response = self
            .http
            .delete(format!("{}/{topic}", self.topics_url()))
            .send()
            .map_err(|e| unreachable(&self.base, e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        checked(response, &format!("deleting topic {topic}")).map(|_| true)
    }
}
