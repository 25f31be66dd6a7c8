"""What the container tests share: podman with the project's settings, the image, the
independent reader, and a stage's health endpoint.

Every test here runs real containers with podman (`--network host`, so they reach the local
cluster on 127.0.0.1) from the image deploy/build-images builds out of the repository's
Dockerfile. A machine that cannot run containers fails each test in one line saying why (no
podman, no user namespaces, a container that does not start): a missing engine is never a
skip. Leave them out on purpose with `pytest -m "not containers"`. Tests that need the local
cluster ask for conftest's fixtures, so without one they skip, or fail under
STAGE_HOST_REQUIRE_CLUSTER, as the other tests do.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGES = REPO / "deploy" / "build-images"
CONTAINERS_CONF = REPO / "deploy" / "containers.conf"
KAFKA_TOOL = REPO / "tests" / "tools" / "kafka_tool.py"

BOOTSTRAP_SERVERS = os.environ.get("BOOTSTRAP_SERVERS", "127.0.0.1:9092")
SCHEMA_REGISTRY_URL = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")

# The image's tag for this checkout: podman's image store is the machine's, and two checkouts
# testing at once must not run each other's binaries under one tag.
IMAGE_TAG = "test-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:8]

# How long the pipelines in these tests get to deliver what the source produced. A deadline for
# delivery, not a measurement: on an idle machine they take seconds.
DELIVERY_DEADLINE_SECONDS = 180


def engine_env() -> dict[str, str]:
    """The environment podman, podman-compose and deploy/build-images run with."""
    return os.environ | {"CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs podman with the project's containers.conf; a failure names the command and its error."""
    done = subprocess.run(
        ["podman", *args], env=engine_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}"
        )
    return done


@functools.cache
def _built_image() -> tuple[str | None, str]:
    if shutil.which("podman") is None:
        return (
            None,
            "podman is not installed (apt-get install podman runc mmdebstrap; .ci/run does)",
        )
    done = subprocess.run(
        [str(BUILD_IMAGES), "--tag", f"stage-host:{IMAGE_TAG}"],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        errors = [line for line in lines if line.startswith("build-images: error: ")]
        return None, (errors or lines)[-1].removeprefix("build-images: error: ")
    return done.stdout.strip().splitlines()[-1], ""


def stage_host_image() -> str:
    """The image of the repository's Dockerfile, built once per test session by
    deploy/build-images (as `stage-host:IMAGE_TAG`); a machine that cannot build or run it
    fails the test in one line."""
    image, why = _built_image()
    if image is None:
        pytest.fail(f"containers cannot run here: {why}", pytrace=False)
    return image


@dataclass(frozen=True)
class Topics:
    """Unique names for one run of the example pipeline: topics, groups, and the prefix of
    its workloads."""

    run: str
    one: str
    two: str
    three: str
    group_two: str
    group_three: str

    @staticmethod
    def new(label: str) -> Topics:
        run = f"{label}-{uuid.uuid4().hex[:8]}"
        return Topics(
            run=run,
            one=f"{run}-one",
            two=f"{run}-two",
            three=f"{run}-three",
            group_two=f"{run}-g2",
            group_three=f"{run}-g3",
        )

    def args_for(self, plugin: str) -> list[str]:
        """The isolation args of the stage that runs `plugin` (libstage_<n>[-version].so)."""
        stage = Path(plugin).name.removeprefix("libstage_").split("-")[0].split(".")[0]
        if stage == "one":
            return ["--output-topic", self.one]
        if stage == "two":
            return [
                "--input-topic",
                self.one,
                "--output-topic",
                self.two,
                "--group-id",
                self.group_two,
            ]
        if stage == "three":
            return [
                "--input-topic",
                self.two,
                "--output-topic",
                self.three,
                "--group-id",
                self.group_three,
            ]
        raise AssertionError(f"no stage of the example pipeline runs {plugin}")


# --- the independent reader ------------------------------------------------------------------


def kafka_tool(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, str(KAFKA_TOOL), *args],
        env=os.environ
        | {"BOOTSTRAP_SERVERS": BOOTSTRAP_SERVERS, "SCHEMA_REGISTRY_URL": SCHEMA_REGISTRY_URL},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"kafka_tool {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


def read_all(topic: str) -> list[dict]:
    """Every record of `topic` (read_committed), decoded by confluent-kafka's AvroDeserializer,
    for a topic nothing writes to any more: reading stops once nothing new came for 5 s."""
    out = kafka_tool(
        "consume-avro", "--topic", topic, "--count", "0", "--idle", "5", "--timeout", "120"
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def postids(records: list[dict]) -> list[str]:
    return [r["value"]["postid"] for r in records]


def read_count(topic: str, count: int) -> list[dict]:
    """The first `count` records of `topic`; fails naming how many arrived when fewer do
    within the delivery deadline."""
    out = kafka_tool(
        "consume-avro",
        "--topic",
        topic,
        "--count",
        str(count),
        "--timeout",
        str(DELIVERY_DEADLINE_SECONDS),
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_for_count(topic: str, count: int) -> list[dict]:
    """Reads `topic` until it holds `count` distinct postids (at-least-once may have written
    some twice); fails when they do not arrive within the delivery deadline."""
    records = read_count(topic, count)
    while (distinct := len(set(postids(records)))) < count:
        records = read_count(topic, len(records) + count - distinct)
    return records


def committed(topic: str, group: str) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (negative: none)."""
    offsets = json.loads(kafka_tool("committed", "--topic", topic, "--group", group))
    return {int(partition): offset for partition, offset in offsets.items()}


def end_offsets(topic: str) -> dict[int, int]:
    """Each partition's high watermark: the offset the next record will get."""
    ends = json.loads(kafka_tool("end-offsets", "--topic", topic))
    return {int(partition): offset for partition, offset in ends.items()}


def missing(expected: set[str], records: list[dict]) -> list[str]:
    return sorted(expected - set(postids(records)), key=lambda p: int(p.rpartition("_")[2]))


# --- a stage in a container ------------------------------------------------------------------

_SERVING = re.compile(r"serving /metrics")


def metrics_address(container: str) -> str | None:
    """The address a stage serves its endpoints on, from its JSON log (`--metrics-addr` with
    port 0 picks a free one and logs it). A restarted container logs one per start: the last
    is the running one's."""
    logs = podman("logs", container, check=False)
    address = None
    for line in (logs.stdout + logs.stderr).splitlines():
        if not _SERVING.search(line):
            continue
        try:
            fields = json.loads(line).get("fields", {})
        except json.JSONDecodeError:
            continue
        if "addr" in fields:
            address = fields["addr"].replace("0.0.0.0", "127.0.0.1")
    return address


def is_ready(address: str) -> bool:
    """The readiness probe's question: GET /health/ready answers 200."""
    try:
        with urllib.request.urlopen(f"http://{address}/health/ready", timeout=5) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(container: str, deadline_seconds: float = 120) -> str:
    """Waits until the stage in `container` is ready, as a kubelet's readiness probe would
    see it; returns its endpoint address."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        address = metrics_address(container)
        if address and is_ready(address):
            return address
        time.sleep(0.5)
    state = podman(
        "inspect", "--format", "{{.State.Status}} {{.RestartCount}}", container, check=False
    )
    logs = podman("logs", "--tail", "20", container, check=False)
    raise AssertionError(
        f"{container} (status, restarts: {state.stdout.strip()}) was not ready within {deadline_seconds} s:\n"
        f"{logs.stdout}{logs.stderr}"
    )


def exit_code(container: str) -> int:
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip())


def logs_of(container: str, tail: int = 30) -> str:
    done = podman("logs", "--tail", str(tail), container, check=False)
    return done.stdout + done.stderr
