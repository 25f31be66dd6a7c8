"""The library's Schema Registry client. Under stage-host the host registers the output
schema (the KafkaTopicConfig's sr_json_path); by hand, use `stage-host schema register`."""


class SchemaRegisteryTopicClient:
    def __init__(self, sr_url: str, topic_name: str):
        raise RuntimeError(
            "SchemaRegisteryTopicClient is not available under stage-host: the host registers "
            "the output schema (by hand: stage-host schema register)"
        )

    @staticmethod
    def load_json_shcema(path: str):
        with open(path, "r") as f:
            return f.read()
