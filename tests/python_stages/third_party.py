"""A stage that imports a third-party package with native code (msgpack's C extension) from
its own virtualenv (the config's `venv`)."""
import os

import msgpack
from msgpack import _cmsgpack  # the C extension; ImportError if only the fallback exists

from kafka_client.kafka_config import KafkaTopicConfig
from kafka_client.kafka_pipeline.pipeline.pipeline_stage import PipelineStage

SCRIPT_DIR = os.path.dirname(__file__)
assert msgpack.Packer is _cmsgpack.Packer


class Packed(PipelineStage):
    def __init__(self, kafka_config):
        super().__init__(kafka_config, 'py_posts', 'py_packed', 'py_packed_g1', True,
                         KafkaTopicConfig(topic_name='py_packed', n_partitions=1, n_replications=1,
                                          sr_json_path=os.path.join(SCRIPT_DIR, '..', '..', 'schemas',
                                                                    'stage_two.json')))

    def transform(self, msg):
        value = msgpack.unpackb(msgpack.packb(msg.value()))
        return {'postid': value['postid'], 'ppm': 7.0}
