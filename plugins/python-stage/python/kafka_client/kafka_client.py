"""The library's producers and consumers. Under stage-host the host owns Kafka: a stage
neither produces nor consumes by itself, so constructing one of these is an error that says
what to do instead."""


def _host_owns_kafka(name):
    raise RuntimeError(
        f"{name} is not available under stage-host: the host consumes the stage's input and "
        "produces what transform() returns (or what a source hands to to_output())"
    )


class KafkaProducer:
    def __init__(self, *args, **kwargs):
        _host_owns_kafka(type(self).__name__)


class KafkaConsumer:
    def __init__(self, *args, **kwargs):
        _host_owns_kafka(type(self).__name__)


class KafkaProducerAvro(KafkaProducer):
    pass


class KafkaConsumerAvro(KafkaConsumer):
    pass
