"""PipelineStage and SourcePipelineStage, as stage-host runs them.

The constructors take the library's arguments and check them as the library does, but open no
connection: they record the input topic, the output topic, the consumer group and the output
topic config, which stage-host reads as the stage's spec. stage-host then calls transform(msg)
for every input record (a stage), or runs start() in a thread of its own, taking what it
hands to to_output(key, value) with backpressure (a source).
"""
from abc import ABC, abstractmethod
from typing import Union

import _stage_host
from kafka_client import StageStopped  # noqa: F401  (raised by to_output once stopped)
from kafka_client.kafka_config import KafkaConfig, KafkaTopicConfig


class PipelineStage(ABC):
    def __init__(self, kafka_config: KafkaConfig,
                 input_topic: Union[str, None],
                 output_topic: Union[str, None],
                 consumer_group_id: Union[str, None],
                 create_if_not_exist: bool = False,
                 output_topic_config: KafkaTopicConfig = None):
        if input_topic is None and output_topic is None:
            raise Exception('both input_topic and output_topic cannot be None')
        if input_topic is not None and consumer_group_id is None:
            raise Exception('consumer_group_id cannot be None while input_topic is provided')
        if create_if_not_exist and output_topic and not output_topic_config:
            raise Exception('output_topic_config is not provided')
        self._config = kafka_config
        if any(getattr(kafka_config, url, None)
               for url in ('kafka_server', 'kafka_rest_url', 'sr_url')):
            _stage_host.note_kafka_config(kafka_config)
        self._stage_host_input_topic = input_topic
        self._stage_host_output_topic = output_topic
        self._stage_host_group_id = consumer_group_id
        self._stage_host_topic_config = output_topic_config
        self._input, self._output = None, None

    def start(self):
        raise RuntimeError(
            "under stage-host the host runs the stage and calls transform(msg) for each record; "
            "start() is not called"
        )

    @abstractmethod
    def transform(self, msg):
        pass

    def _to_output(self, key, value):
        sink = getattr(self, '_stage_host_sink', None)
        if sink is None:
            raise RuntimeError(
                "to_output() hands records to stage-host, which only takes them while it runs "
                "this source's start()"
            )
        sink(key, value)


class SourcePipelineStage(PipelineStage, ABC):
    def __init__(self, kafka_config: KafkaConfig, output_topic: Union[str, None],
                 create_if_not_exist: bool = False, output_topic_config: KafkaTopicConfig = None):
        super().__init__(kafka_config, None, output_topic, None, create_if_not_exist,
                         output_topic_config)

    def transform(self, msg):
        return None

    @abstractmethod
    def start(self):
        pass

    def to_output(self, key, value):
        return self._to_output(key, value)


class PipelineStageConsumer:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            "PipelineStageConsumer is not available under stage-host: the host consumes the "
            "stage's input"
        )
