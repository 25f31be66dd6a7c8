//! Kafka REST Proxy v3 topic endpoints, Confluent-compatible.
//!
//! Confluent's REST Proxy cannot run where there is no JVM or Docker, yet tools written against
//! it (the original Python library's `ClusterAdmin`, the stage host's admin module) create and
//! inspect topics through its v3 API. This crate serves the part of that API those tools use —
//! clusters, topics, partitions and replicas — over the Kafka Admin API and metadata, with the same JSON shapes and
//! error codes, so the same client code runs against this proxy locally and against Confluent's
//! in real deployments. Partitions and their replicas are served too, so a topic's leaders and
//! in-sync replicas can be described through the proxy as through the Admin API.
//!
//! Layout: [`kafka`] talks to the broker, [`model`] holds the JSON shapes, [`error`] maps
//! failures to Confluent's `{"error_code", "message"}` bodies and [`routes`] wires them into an
//! axum [`Router`](axum::Router).

pub mod error;
pub mod kafka;
pub mod model;
pub mod routes;

pub use error::ApiError;
pub use kafka::{KafkaAdmin, KafkaAdminConfig};
pub use routes::{router, AppState};
