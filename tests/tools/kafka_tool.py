#!/usr/bin/env python3
"""An independent Kafka client for the end-to-end tests: Python confluent-kafka with its own
librdkafka and its own Avro serde (fastavro), so what the tests check is not only our code
agreeing with itself.

    kafka_tool.py produce-avro  --topic T --schema FILE --count N [--key-prefix postid_] [--start 0]
                                [--poison-at 7,17]                  (raw b"poison" at those indices)
                                [--transaction commit|abort]        (all in one transaction)
    kafka_tool.py serialize     --topic T --schema FILE --count N [--start 0]   (framed values, hex)
    kafka_tool.py produce-raw   --topic T --key K (--value-hex HEX | --tombstone)
    kafka_tool.py consume-avro  --topic T --count N [--timeout 60]      (JSON lines on stdout;
                                --count 0: all, until nothing new for --idle seconds)
    kafka_tool.py consume-raw   --topic T --count N [--timeout 60]      (key, value hex, headers)
    kafka_tool.py committed     --topic T --group G                     (JSON {partition: offset})
    kafka_tool.py end-offsets   --topic T                               (JSON {partition: high watermark})
    kafka_tool.py create-topic  --topic T [--partitions 1]

Broker and registry come from BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL (local defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

BOOTSTRAP = os.environ.get("BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REGISTRY = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")


def produce_avro(args: argparse.Namespace) -> None:
    registry = SchemaRegistryClient({"url": REGISTRY})
    with open(args.schema) as f:
        schema = f.read()
    serializer = AvroSerializer(registry, schema)
    config = {"bootstrap.servers": BOOTSTRAP}
    if args.transaction:
        config["transactional.id"] = f"kafka-tool-{uuid.uuid4().hex}"
    producer = Producer(config)
    if args.transaction:
        producer.init_transactions(30)
        producer.begin_transaction()
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    poison = {int(i) for i in args.poison_at.split(",") if i}
    for i in range(args.start, args.start + args.count):
        postid = f"{args.key_prefix}{i}"
        value = {"postid": postid, "title": uuid.uuid4().hex}
        payload = b"poison" if i in poison else serializer(value, ctx)
        producer.produce(args.topic, key=postid.encode(), value=payload)
        if i % 1000 == 0:
            producer.poll(0)
    if args.transaction == "commit":
        producer.commit_transaction(30)
    elif args.transaction == "abort":
        producer.flush(30)  # the records are written, then aborted
        producer.abort_transaction(30)
    remaining = producer.flush(30)
    if remaining:
        sys.exit(f"{remaining} records were not delivered")


def serialize(args: argparse.Namespace) -> None:
    registry = SchemaRegistryClient({"url": REGISTRY})
    with open(args.schema) as f:
        serializer = AvroSerializer(registry, f.read())
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    for i in range(args.start, args.start + args.count):
        value = {"postid": f"postid_{i}", "title": uuid.uuid4().hex}
        print(serializer(value, ctx).hex())


def produce_raw(args: argparse.Namespace) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    value = None if args.tombstone else bytes.fromhex(args.value_hex)
    producer.produce(args.topic, key=args.key.encode(), value=value)
    if producer.flush(30):
        sys.exit("record was not delivered")


def consume_avro(args: argparse.Namespace) -> None:
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": REGISTRY}))

    def describe(msg):
        value = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        key = msg.key().decode() if msg.key() is not None else None
        return {"key": key, "value": value, "partition": msg.partition(), "offset": msg.offset()}

    consume(args, describe)


def consume_raw(args: argparse.Namespace) -> None:
    def describe(msg):
        headers = {k: (v.decode() if v is not None else None) for k, v in (msg.headers() or [])}
        key = msg.key().decode() if msg.key() is not None else None
        value = msg.value().hex() if msg.value() is not None else None
        return {"key": key, "value_hex": value, "headers": headers, "offset": msg.offset()}

    consume(args, describe)


def consume(args: argparse.Namespace, describe) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"kafka-tool-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([args.topic])
    seen = 0
    deadline = time.monotonic() + args.timeout
    last_record = time.monotonic()
    read_all = args.count == 0
    try:
        while (read_all or seen < args.count) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                # Idle time counts from the first record: joining the group takes seconds.
                if read_all and seen and time.monotonic() - last_record > args.idle:
                    return
                continue
            last_record = time.monotonic()
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            print(json.dumps(describe(msg)), flush=True)
            seen += 1
    finally:
        consumer.close()
    if read_all:
        if seen:
            sys.exit(f"{args.topic} was still receiving records after {args.timeout}s")
        return
    if seen < args.count:
        sys.exit(f"only {seen} of {args.count} records arrived in {args.topic} within {args.timeout}s")


def committed(args: argparse.Namespace) -> None:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": args.group})
    metadata = consumer.list_topics(args.topic, timeout=10)
    partitions = [TopicPartition(args.topic, p) for p in metadata.topics[args.topic].partitions]
    offsets = consumer.committed(partitions, timeout=10)
    consumer.close()
    print(json.dumps({str(tp.partition): tp.offset for tp in offsets}))


def end_offsets(args: argparse.Namespace) -> None:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"kafka-tool-{uuid.uuid4().hex}"})
    metadata = consumer.list_topics(args.topic, timeout=10)
    ends = {}
    for partition in metadata.topics[args.topic].partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(args.topic, partition), timeout=10)
        ends[str(partition)] = high
    consumer.close()
    print(json.dumps(ends))


def create_topic(args: argparse.Namespace) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics([NewTopic(args.topic, args.partitions, 1)])
    for future in futures.values():
        future.result(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce-avro")
    p.add_argument("--topic", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--key-prefix", default="postid_")
    p.add_argument("--poison-at", default="")
    p.add_argument("--transaction", choices=["commit", "abort"])
    p.set_defaults(run=produce_avro)
    p = sub.add_parser("serialize")
    p.add_argument("--topic", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=int, default=0)
    p.set_defaults(run=serialize)
    p = sub.add_parser("produce-raw")
    p.add_argument("--topic", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--value-hex")
    p.add_argument("--tombstone", action="store_true")
    p.set_defaults(run=produce_raw)
    p = sub.add_parser("consume-avro")
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--idle", type=float, default=5)
    p.set_defaults(run=consume_avro)
    p = sub.add_parser("consume-raw")
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--idle", type=float, default=5)
    p.set_defaults(run=consume_raw)
    p = sub.add_parser("committed")
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.set_defaults(run=committed)
    p = sub.add_parser("end-offsets")
    p.add_argument("--topic", required=True)
    p.set_defaults(run=end_offsets)
    p = sub.add_parser("create-topic")
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, default=1)
    p.set_defaults(run=create_topic)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
