//! Cluster administration from the command line: the Python library's `ClusterAdmin` (topics,
//! through the Kafka Admin API or the REST Proxy v3) and `SchemaRegisteryTopicClient`
//! (subjects and schemas in the Schema Registry).
//!
//! Each command prints a human-readable table by default and JSON with `--json`, so scripts
//! and tests read the same facts an operator sees.

pub mod schema;
pub mod topic;
