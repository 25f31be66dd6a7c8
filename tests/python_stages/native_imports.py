"""A stage whose script imports C extension modules of the standard library (on Debian's
Python 3.11 `_json`, `_decimal`, `_ssl` and `_ctypes` are shared objects; `math` and
`_datetime` are built in) and uses them in its transform."""
import _ctypes  # noqa: F401
import _decimal
import _json  # noqa: F401
import _ssl  # noqa: F401
import ctypes
import decimal
import json
import math
import os
import ssl

from kafka_client.kafka_config import KafkaTopicConfig
from kafka_client.kafka_pipeline.pipeline.pipeline_stage import PipelineStage

SCRIPT_DIR = os.path.dirname(__file__)

# The C implementations, not the pure-Python fallbacks.
assert decimal.Decimal is _decimal.Decimal
assert json.decoder.c_scanstring is not None
assert ssl.OPENSSL_VERSION


class NativeScored(PipelineStage):
    def __init__(self, kafka_config):
        super().__init__(kafka_config, 'py_posts', 'py_native', 'py_native_g1', True,
                         KafkaTopicConfig(topic_name='py_native', n_partitions=1, n_replications=1,
                                          sr_json_path=os.path.join(SCRIPT_DIR, '..', '..', 'schemas',
                                                                    'stage_two.json')))

    def transform(self, msg):
        postid = json.loads(json.dumps(msg.value()))['postid']
        n = decimal.Decimal(postid.split('_')[1])
        length = ctypes.c_size_t(len(postid)).value
        return {'postid': postid, 'ppm': float(n * 2) + math.floor(0.5) + length * 0}
