"""Connection and topic settings, as the library declares them.

Under stage-host the URLs of a KafkaConfig give way to the host's connection
(--bootstrap-servers, --schema-registry-url, --rest-proxy-url); KafkaTopicConfig gives the
output topic's partitions, replication factor and schema file.
"""
from dataclasses import dataclass


@dataclass
class KafkaConfig:
    kafka_server: str
    kafka_rest_url: str
    sr_url: str


@dataclass
class KafkaTopicConfig:
    topic_name: str
    n_replications: int
    n_partitions: int
    sr_json_path: str
