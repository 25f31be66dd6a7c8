"""The library's REST Proxy admin client. Under stage-host the host creates the output topic
from the stage's KafkaTopicConfig; by hand, use `stage-host topic create`."""


class InvalidClusterException(Exception):
    pass


class TopicException(Exception):
    pass


class ClusterAdmin:
    def __init__(self, kafka_rest_url: str):
        raise RuntimeError(
            "ClusterAdmin is not available under stage-host: the host creates the output topic "
            "from the stage's KafkaTopicConfig (by hand: stage-host topic create)"
        )
