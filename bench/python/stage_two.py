"""Stage two written the way the Python library does it, for the benchmark.

Consumes stage-one records, deserializes them with confluent-kafka's AvroDeserializer, emits
{postid, ppm: 100.0} with AvroSerializer, and produces them keyed like the input. Two modes:

  flush-per-record  producer.flush() after every record (the library's pattern)
  batched           producer.poll(0) every 1000 records; flush only on stop

Runs until SIGTERM, like stage-host; the benchmark watches the output topic to see it finish.
"""

import argparse
import os
import signal
import sys

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--mode", choices=["flush-per-record", "batched"], required=True)
    parser.add_argument("--output-schema", required=True)
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("STAGE_HOST_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    )
    parser.add_argument(
        "--schema-registry-url",
        default=os.environ.get("STAGE_HOST_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
    )
    args = parser.parse_args()

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    registry = SchemaRegistryClient({"url": args.schema_registry_url})
    with open(args.output_schema) as f:
        output_schema = f.read()
    deserialize = AvroDeserializer(registry)
    serialize = AvroSerializer(registry, output_schema)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group_id,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            # The benchmark detects completion from committed offsets.
            "auto.commit.interval.ms": 100,
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap_servers})
    consumer.subscribe([args.input_topic])
    in_ctx = SerializationContext(args.input_topic, MessageField.VALUE)
    out_ctx = SerializationContext(args.output_topic, MessageField.VALUE)
    count = 0
    while not stopping:
        message = consumer.poll(0.1)
        if message is None:
            continue
        if message.error():
            print(f"consumer error: {message.error()}", file=sys.stderr)
            continue
        post = deserialize(message.value(), in_ctx)
        scored = {"postid": post["postid"], "ppm": 100.0}
        producer.produce(args.output_topic, key=message.key(), value=serialize(scored, out_ctx))
        count += 1
        if args.mode == "flush-per-record":
            producer.flush()
        elif count % 1000 == 0:
            producer.poll(0)
    producer.flush()
    consumer.close()
    print(f"stopped after {count} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
