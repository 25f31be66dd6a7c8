#!/usr/bin/env python3
"""Checks that stage-two outputs are complete and agree: reads each topic to its end and
compares the (key, postid, ppm) records, with confluent-kafka and its own Avro deserializer
(independent of the stages checked).

    compare_outputs.py [--count N] [--ppm 100.0] [--key-prefix postid_] [--timeout 120] TOPIC...

For every topic: each record's postid equals its key; no key appears twice; each ppm equals
--ppm (when given); with --count, the keys are exactly <key-prefix>0 .. <key-prefix>N-1. Then
every topic must hold the same set of (key, postid, ppm) as the first. Prints one JSON summary
per topic and exits 1 on any difference (naming a few of them).

Topics are read with isolation.level=read_committed (librdkafka's default), so records of
aborted or open transactions do not count: an exactly_once_v2 output is checked as its
consumers see it. A topic is read to the end when every partition's position has reached the
high watermark taken at the start (a transaction marker at the end is skipped over), so a
topic still being written is read as of that moment; an open transaction holds its partition
back and the read ends with an error after --timeout.

Broker and registry come from BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL (local defaults), as
for tests/tools/kafka_tool.py. Run it with the project's venv
(~/.cache/stage-host/venv/bin/python, made by scripts/python-env).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import struct
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

BOOTSTRAP = os.environ.get("BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REGISTRY = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")
# How many differences to print per kind.
SHOW = 5


def high_watermarks(topic: str, partitions: list[int]) -> dict[int, int]:
    """Each partition's high watermark. Asked with read_uncommitted: a read_committed client is
    answered with the last stable offset, which stops before an open transaction, so the read
    would end there without a word."""
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"compare-outputs-{uuid.uuid4().hex}",
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1] for p in partitions}
    finally:
        consumer.close()


def read_topic(topic: str, timeout: float) -> list[tuple[str | None, str, float]]:
    """Every committed record of `topic` as (key, postid, ppm)."""
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": REGISTRY}))
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"compare-outputs-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            sys.exit(f"topic {topic} not found")
        partitions = sorted(metadata.topics[topic].partitions)
        ends = high_watermarks(topic, partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = {p for p in partitions if ends[p] > 0}
        ctx = SerializationContext(topic, MessageField.VALUE)
        records = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                sys.exit(
                    f"{topic}: partitions {sorted(pending)} not read to their end within {timeout}s "
                    "(an open transaction holds back read_committed consumers until it is "
                    "committed, or aborted when transaction.timeout.ms passes)"
                )
            for msg in consumer.consume(10000, 0.5):
                if msg.error():
                    sys.exit(f"{topic}: consumer error: {msg.error()}")
                value = deserializer(msg.value(), ctx)
                key = msg.key().decode() if msg.key() is not None else None
                records.append((key, value["postid"], value["ppm"]))
            # Positions move past transaction markers and aborted records too, which is why
            # they, not the last offset read, tell when a partition is done.
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= ends[tp.partition]:
                    pending.discard(tp.partition)
        return records
    finally:
        consumer.close()


def check_topic(topic: str, records, args) -> tuple[dict, list[str]]:
    problems = []
    keys = collections.Counter(key for key, _, _ in records)
    duplicates = [k for k, n in keys.items() if n > 1]
    if duplicates:
        problems.append(f"{len(duplicates)} keys appear more than once, e.g. {sorted(duplicates)[:SHOW]}")
    mismatched = [(k, p) for k, p, _ in records if k != p]
    if mismatched:
        problems.append(f"{len(mismatched)} records whose postid is not their key, e.g. {mismatched[:SHOW]}")
    if args.ppm is not None:
        wrong = [(k, ppm) for k, _, ppm in records if ppm != args.ppm]
        if wrong:
            problems.append(f"{len(wrong)} records with ppm other than {args.ppm}, e.g. {wrong[:SHOW]}")
    if args.count is not None:
        expected = {f"{args.key_prefix}{i}" for i in range(args.count)}
        missing = expected - keys.keys()
        extra = keys.keys() - expected
        if missing:
            problems.append(f"{len(missing)} expected keys missing, e.g. {sorted(missing)[:SHOW]}")
        if extra:
            problems.append(f"{len(extra)} unexpected keys, e.g. {sorted(extra, key=str)[:SHOW]}")
    summary = {"topic": topic, "records": len(records), "distinct_keys": len(keys), "duplicates": len(duplicates)}
    return summary, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="+", metavar="TOPIC")
    parser.add_argument("--count", type=int, help="the input's record count: keys <prefix>0 .. <prefix>N-1")
    parser.add_argument("--ppm", type=float, help="the ppm every record must carry")
    parser.add_argument("--key-prefix", default="postid_")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to read each topic")
    args = parser.parse_args()
    if args.ppm is not None:
        # ppm is an Avro float: compare with the value as 32 bits hold it (0.1 reads back as
        # 0.10000000149011612).
        args.ppm = struct.unpack("<f", struct.pack("<f", args.ppm))[0]

    failed = False
    reference = None
    for topic in args.topics:
        records = read_topic(topic, args.timeout)
        summary, problems = check_topic(topic, records, args)
        triples = set(records)
        if reference is None:
            reference = (topic, triples)
        else:
            only_ref = reference[1] - triples
            only_here = triples - reference[1]
            summary["same_as"] = reference[0] if not (only_ref or only_here) else None
            if only_ref:
                problems.append(f"{len(only_ref)} records of {reference[0]} missing, e.g. {sorted(only_ref, key=str)[:SHOW]}")
            if only_here:
                problems.append(f"{len(only_here)} records not in {reference[0]}, e.g. {sorted(only_here, key=str)[:SHOW]}")
        summary["ok"] = not problems
        print(json.dumps(summary), flush=True)
        for problem in problems:
            print(f"{topic}: {problem}", file=sys.stderr)
        failed |= bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
