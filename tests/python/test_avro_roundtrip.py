"""Avro records survive the trip producer -> broker -> consumer with the independent Python
clients: confluent-kafka's AvroSerializer registers the schema in the project's Schema
Registry and frames each record (magic byte 0, 4-byte schema id, Avro datum); the consumer
side resolves the id through the registry and decodes.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "stage_one.json"
RECORDS = 200
DEADLINE_S = 60


def create_topic(bootstrap_servers: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    futures[topic].result(timeout=30)
    # Creation becomes visible in metadata a little later; poll instead of sleeping.
    deadline = time.monotonic() + 30
    while topic not in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"topic {topic} not visible in metadata"
        time.sleep(0.1)


def produce(bootstrap_servers: str, registry: SchemaRegistryClient, topic: str, records: list[dict]) -> None:
    serializer = AvroSerializer(registry, SCHEMA_PATH.read_text())
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    failures = []

    def on_delivery(err, _msg):
        if err is not None:
            failures.append(err)

    for i, record in enumerate(records):
        value = serializer(record, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=f"key-{i}".encode(), value=value, on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} records not delivered"
    assert not failures, failures


def consume(bootstrap_servers: str, topic: str, group: str, count: int) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "session.timeout.ms": 6000,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(messages) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def test_avro_records_round_trip(bootstrap_servers, schema_registry_url, unique_name):
    topic = unique_name
    registry = SchemaRegistryClient({"url": schema_registry_url})
    records = [{"postid": f"post-{i}", "title": f"title {i} \u00e9\u00df"} for i in range(RECORDS)]

    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, registry, topic, records)
    messages = consume(bootstrap_servers, topic, f"{unique_name}-group", len(records))
    assert len(messages) == len(records), f"got {len(messages)} of {len(records)} records"

    registered = registry.get_latest_version(f"{topic}-value")
    assert json.loads(registered.schema.schema_str)["name"] == "test_stage_one_topic_value"

    deserializer = AvroDeserializer(registry)
    decoded = []
    for msg in messages:
        magic, schema_id = struct.unpack(">bI", msg.value()[:5])
        assert magic == 0
        assert schema_id == registered.schema_id
        decoded.append(deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE)))
    assert decoded == records
    assert [msg.key() for msg in messages] == [f"key-{i}".encode() for i in range(RECORDS)]


def test_reader_default_fills_missing_field(bootstrap_servers, schema_registry_url, unique_name):
    """A record written without `title` (an older schema) reads back with the field's default
    when the consumer asks for the current schema: the writer schema is found in the registry
    by the id in the record's header, then resolved against the reader schema."""
    topic = unique_name
    registry = SchemaRegistryClient({"url": schema_registry_url})
    old_schema = json.loads(SCHEMA_PATH.read_text())
    old_schema["fields"] = [field for field in old_schema["fields"] if field["name"] != "title"]

    create_topic(bootstrap_servers, topic)
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    serializer = AvroSerializer(registry, json.dumps(old_schema))
    producer.produce(topic, value=serializer({"postid": "old"}, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(30) == 0

    messages = consume(bootstrap_servers, topic, f"{unique_name}-group", 1)
    assert len(messages) == 1
    reader = AvroDeserializer(registry, SCHEMA_PATH.read_text())
    value = reader(messages[0].value(), SerializationContext(topic, MessageField.VALUE))
    assert value == {"postid": "old", "title": "default_title"}
