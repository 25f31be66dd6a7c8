//! HTTP routes of the v3 cluster, topic, partition and replica endpoints.
//!
//! Each handler checks the cluster id in the path first (404 for any other id, as Confluent
//! does), then asks [`KafkaAdmin`] and renders the answer with [`Links`].

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::error::ApiError;
use crate::kafka::{KafkaAdmin, TopicInfo, TopicSpec, Visibility};
use crate::model::{
    ClusterData, CreateTopicRequest, Links, List, PartitionData, ReplicaData, TopicData,
};

/// Shared state of all handlers.
pub struct AppState {
    admin: KafkaAdmin,
    fallback_base_url: String,
}

impl AppState {
    /// State over an admin client. `fallback_base_url` (e.g. `http://127.0.0.1:8082`) is used
    /// for links when a request carries no `Host` header.
    pub fn new(admin: KafkaAdmin, fallback_base_url: impl Into<String>) -> Self {
        Self {
            admin,
            fallback_base_url: fallback_base_url.into(),
        }
    }
}

/// The router with every endpoint this proxy serves; unknown paths get a JSON 404.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v3/clusters", get(list_clusters))
        .route("/v3/clusters/{cluster_id}", get(get_cluster))
        .route(
            "/v3/clusters/{cluster_id}/topics",
            get(list_topics).post(create_topic),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic_name}",
            get(get_topic).delete(delete_topic),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions",
            get(list_partitions),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}",
            get(get_partition),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}/replicas",
            get(list_replicas),
        )
        .route(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}/replicas/{broker_id}",
            get(get_replica),
        )
        .fallback(|| async { ApiError::not_found() })
        .with_state(Arc::new(state))
}

type Shared = State<Arc<AppState>>;

/// Links are built from the `Host` the client used, so they work behind any address.
impl FromRequestParts<Arc<AppState>> for Links {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| !host.is_empty());
        Ok(match host {
            Some(host) => Links::new(format!("http://{host}")),
            None => Links::new(state.fallback_base_url.clone()),
        })
    }
}

/// The cluster id if `requested` names this cluster, else Confluent's 404.
async fn this_cluster(state: &AppState, requested: &str) -> Result<String, ApiError> {
    let cluster_id = state.admin.cluster_id().await?;
    if cluster_id == requested {
        Ok(cluster_id)
    } else {
        Err(ApiError::cluster_not_found(requested))
    }
}

async fn list_clusters(
    State(state): Shared,
    links: Links,
) -> Result<Json<List<ClusterData>>, ApiError> {
    let cluster_id = state.admin.cluster_id().await?;
    let controller = state.admin.controller_id().await?;
    Ok(Json(
        links.cluster_list(links.cluster(&cluster_id, controller)),
    ))
}

async fn get_cluster(
    State(state): Shared,
    Path(cluster_id): Path<String>,
    links: Links,
) -> Result<Json<ClusterData>, ApiError> {
    let cluster_id = this_cluster(&state, &cluster_id).await?;
    let controller = state.admin.controller_id().await?;
    Ok(Json(links.cluster(&cluster_id, controller)))
}

async fn list_topics(
    State(state): Shared,
    Path(cluster_id): Path<String>,
    links: Links,
) -> Result<Json<List<TopicData>>, ApiError> {
    let cluster_id = this_cluster(&state, &cluster_id).await?;
    let topics = state.admin.list_topics().await?;
    Ok(Json(links.topic_list(&cluster_id, &topics)))
}

async fn get_topic(
    State(state): Shared,
    Path((cluster_id, topic_name)): Path<(String, String)>,
    links: Links,
) -> Result<Json<TopicData>, ApiError> {
    let cluster_id = this_cluster(&state, &cluster_id).await?;
    let topic = state.admin.describe_topic(&topic_name).await?;
    Ok(Json(links.topic(&cluster_id, &topic)))
}

async fn list_partitions(
    State(state): Shared,
    Path((cluster_id, topic_name)): Path<(String, String)>,
    links: Links,
) -> Result<Json<List<PartitionData>>, ApiError> {
    let cluster_id = this_cluster(&state, &cluster_id).await?;
    let partitions = state.admin.describe_partitions(&topic_name).await?;
    Ok(Json(links.partition_list(
        &cluster_id,
        &topic_name,
        &partitions,
    )))
}

async fn get_partition(
    State(state): Shared,
    Path((cluster_id, topic_name, partition_id)): Path<(String, String, String)>,
    links: Links,
) -> Result<Json<PartitionData>, ApiError> {
    let cluster_id = this_cluster(&state, &cluster_id).await?;
    let partition = partition_of(&state, &topic_name, &partition_id).await?;
    Ok(Json(links.partition(&cluster_id, &topic_name, &partition)))
}

async fn list_replicas(
    State(state): Shared,
    Path((cluster_id, topic_name, partition_id)): Path<(String, String, String)>,
    links: Links,
) -> Result<Json<List<ReplicaData>>, ApiError> {
    let cluster_id = this_cluster(&state, &cluster_id).await?;
    let partition = partition_of(&state, &topic_name, &partition_id).await?;
    Ok(Json(links.replica_list(
        &cluster_id,
        &topic_name,
        &partition,
    )))
}

async fn get_replica(
    State(state): Shared,
    Path((cluster_id, topic_name, partition_id, broker_id)): Path<(String, String, String, String)>,
    links: Links,
) -> Result<Json<ReplicaData>, ApiError> {
    let cluster_id = this_cluster(&state, &cluster_id).await?;
    let partition = partition_of(&state, &topic_name, &partition_id).await?;
    let broker = broker_id
        .parse()
        .ok()
        .filter(|broker| partition.replicas.contains(broker))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(links.replica(
        &cluster_id,
        &topic_name,
        &partition,
        broker,
    )))
}

/// The partition the path names. As Confluent's proxy: an unknown topic is 40403, a partition
/// the topic does not have (or an id that is no number) a plain 404.
async fn partition_of(
    state: &AppState,
    topic: &str,
    partition_id: &str,
) -> Result<crate::kafka::PartitionInfo, ApiError> {
    let partitions = state.admin.describe_partitions(topic).await?;
    let id: i32 = partition_id.parse().map_err(|_| ApiError::not_found())?;
    partitions
        .into_iter()
        .find(|p| p.partition_id == id)
        .ok_or_else(ApiError::not_found)
}

async fn create_topic(
    State(state): Shared,
    Path(cluster_id): Path<String>,
    links: Links,
    body: Result<Json<CreateTopicRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let cluster_id = this_cluster(&state, &cluster_id).await?;
    let Json(request) = body.map_err(body_error)?;
    if request.topic_name.is_empty() {
        return Err(ApiError::bad_request("topic_name must not be empty."));
    }
    let spec = TopicSpec {
        name: request.topic_name.clone(),
        partitions_count: request.partitions_count,
        replication_factor: request.replication_factor,
        configs: request
            .configs
            .iter()
            .map(|entry| (entry.name.clone(), entry.value.clone()))
            .collect(),
    };
    state
        .admin
        .create_topic(&spec, request.validate_only)
        .await?;
    tracing::info!(topic = %spec.name, validate_only = request.validate_only, "created topic");

    // Answer with what the broker reports once the topic is visible; if it is slow to show,
    // answer with what was asked for, as Confluent's proxy does.
    let visible = if request.validate_only {
        None
    } else {
        state
            .admin
            .wait_for_topic(&spec.name, Visibility::Present)
            .await?
    };
    let topic = visible.unwrap_or_else(|| TopicInfo {
        name: spec.name.clone(),
        is_internal: false,
        partitions_count: spec.partitions_count.unwrap_or(-1),
        replication_factor: spec.replication_factor.unwrap_or(-1),
    });
    Ok((StatusCode::CREATED, Json(links.topic(&cluster_id, &topic))).into_response())
}

/// Confluent answers any unreadable body with 400, only a wrong content type with 415.
fn body_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            "HTTP 415 Unsupported Media Type",
        ),
        other => ApiError::bad_request(other.body_text()),
    }
}

async fn delete_topic(
    State(state): Shared,
    Path((cluster_id, topic_name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    this_cluster(&state, &cluster_id).await?;
    // Check first: not every broker reports an unknown topic in DeleteTopics.
    state.admin.describe_topic(&topic_name).await?;
    state.admin.delete_topic(&topic_name).await?;
    state
        .admin
        .wait_for_topic(&topic_name, Visibility::Absent)
        .await?;
    tracing::info!(topic = %topic_name, "deleted topic");
    Ok(StatusCode::NO_CONTENT)
}
