"""Python stages the end-to-end tests run under stage-host, written against the kafka_client
library's API as its users write them. Each class shows one behaviour; the tests give the
topics and group on the command line, so the names declared here are only defaults."""
import ctypes
import os
import time

from kafka_client.kafka_config import KafkaConfig, KafkaTopicConfig
from kafka_client.kafka_pipeline.pipeline.pipeline_stage import PipelineStage, SourcePipelineStage

SCRIPT_DIR = os.path.dirname(__file__)
# A copy of this script elsewhere (a new version for a swap) finds the schemas through the
# environment.
SCHEMAS = os.environ.get('PY_STAGE_SCHEMAS', os.path.join(SCRIPT_DIR, '..', '..', 'schemas'))

kafka_config = KafkaConfig(kafka_server='nowhere.invalid:9092',
                           kafka_rest_url='http://nowhere.invalid:8082',
                           sr_url='http://nowhere.invalid:8081')


def number(msg):
    return int(msg.value()['postid'].split('_')[1])


class Scored(PipelineStage):
    """stage two's transform: {postid, ppm}."""
    PPM = 100

    def __init__(self, kafka_config: KafkaConfig):
        output_topic = 'py_scored'
        output_topic_config = KafkaTopicConfig(
            topic_name=output_topic, n_partitions=2, n_replications=1,
            sr_json_path=os.path.join(SCHEMAS, 'stage_two.json'))
        super().__init__(kafka_config, 'py_posts', output_topic, 'py_scored_g1', True,
                         output_topic_config)

    def transform(self, msg):
        return {'postid': msg.value()['postid'], 'ppm': self.PPM}


class Faulty(Scored):
    """Every outcome a transform can have, by post number modulo 10."""

    def transform(self, msg):
        n = number(msg)
        if n % 10 == 3:
            raise ValueError(f'post {n} is cursed')
        if n % 10 == 5:
            return {'postid': msg.value()['postid'], 'ppm': 'high'}
        if n % 10 == 6:
            return {'ppm': 1.0}
        if n % 10 == 7:
            return None
        if n % 10 == 9:
            return [{'postid': msg.value()['postid'], 'ppm': 1.0},
                    {'postid': msg.value()['postid'], 'ppm': 2.0}]
        return {'postid': msg.value()['postid'], 'ppm': float(n)}


class Hanging(Scored):
    """Never returns from post 5."""

    def transform(self, msg):
        if number(msg) == 5:
            print('transform of post 5 hangs', flush=True)
            while True:
                time.sleep(1)
        return super().transform(msg)


class Slow(Scored):
    """Post 2 takes 5 s; the test stops the stage while it runs (a marker file, the
    environment's PY_STAGE_SLOW_MARKER, says when)."""

    def transform(self, msg):
        if number(msg) == 2:
            print('slow transform started', flush=True)
            marker = os.environ.get('PY_STAGE_SLOW_MARKER')
            if marker:
                open(marker, 'w').close()
            time.sleep(5)
            print('slow transform finished', flush=True)
        return super().transform(msg)


class Crashing(Scored):
    """Post 5 dereferences a null pointer in native code (ctypes), once: a marker file (the
    environment's PY_STAGE_CRASH_MARKER) says it happened, so the restarted process goes on."""

    def transform(self, msg):
        marker = os.environ.get('PY_STAGE_CRASH_MARKER')
        if number(msg) == 5 and marker and not os.path.exists(marker):
            open(marker, 'w').close()
            print('crashing in native code', flush=True)
            ctypes.string_at(0)
        return super().transform(msg)


class Counting(SourcePipelineStage):
    """A source of stage-one posts that never ends; it prints each post to_output returned
    for, so a test can check that every one of them was delivered."""

    def __init__(self, kafka_config: KafkaConfig):
        output_topic = 'py_counted'
        super().__init__(kafka_config, output_topic, True, KafkaTopicConfig(
            topic_name=output_topic, n_partitions=1, n_replications=1,
            sr_json_path=os.path.join(SCHEMAS, 'stage_one.json')))

    def start(self):
        i = 0
        while True:
            self.to_output(f'postid_{i}', {'postid': f'postid_{i}', 'title': 't'})
            print(f'handed postid_{i}', flush=True)
            i += 1
            time.sleep(0.01)
