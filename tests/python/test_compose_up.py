"""deploy/example-pipeline.yml runs under podman-compose against the local cluster: the source's
100 records reach stage three, counted by the independent reader (tests/tools/kafka_tool.py).

The commands are the README's: the image from deploy/build-images, the compose file with
deploy/example-pipeline.host-network.yml on top, CONTAINERS_CONF and the cluster's addresses in
the environment. One more file on top gives this run its own project name, topics and groups
(the cluster is shared), by adding `--input-topic`/`--output-topic`/`--group-id` to each
service's command. Then `stop` (SIGTERM, the file's stop_grace_period) must find every stage
draining cleanly with its group's offsets at the end of its input.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from container_engine import (
    BOOTSTRAP_SERVERS,
    IMAGE_TAG,
    REPO,
    SCHEMA_REGISTRY_URL,
    Topics,
    committed,
    end_offsets,
    engine_env,
    missing,
    podman,
    postids,
    stage_host_image,
    wait_for_count,
)

pytestmark = [
    pytest.mark.containers,
    pytest.mark.usefixtures("bootstrap_servers", "schema_registry_url"),
]

COMPOSE = REPO / "deploy" / "example-pipeline.yml"
HOST_NETWORK = REPO / "deploy" / "example-pipeline.host-network.yml"
RECORDS = 100


def podman_compose_command() -> list[str]:
    """podman-compose of the test venv (requirements.txt pins it)."""
    return [str(Path(sys.executable).parent / "podman-compose")]


class ComposeRun:
    def __init__(self, topics: Topics):
        self.topics = topics
        self.project = topics.run
        self.directory = Path(tempfile.mkdtemp(prefix="compose-up-"))
        self.isolation = self.directory / "isolation.yml"
        self.isolation.write_text(yaml.safe_dump(self.isolation_file()))

    def isolation_file(self) -> dict:
        """Each service's command from the compose file, plus this run's topics and group."""
        services = yaml.safe_load(COMPOSE.read_text())["services"]
        override = {}
        for name, service in services.items():
            command = list(service["command"])
            plugin = command[command.index("--plugin") + 1]
            override[name] = {"command": command + self.topics.args_for(plugin)}
        return {"services": override}

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [
                *podman_compose_command(),
                "--project-name",
                self.project,
                "-f",
                str(COMPOSE),
                "-f",
                str(HOST_NETWORK),
                "-f",
                str(self.isolation),
                *args,
            ],
            env=engine_env()
            | {
                "BOOTSTRAP_SERVERS": BOOTSTRAP_SERVERS,
                "SCHEMA_REGISTRY_URL": SCHEMA_REGISTRY_URL,
                "STAGE_HOST_VERSION": IMAGE_TAG,
            },
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        assert done.returncode == 0, (
            f"podman-compose {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
        return done

    def containers(self) -> list[dict]:
        listed = podman(
            "ps",
            "--all",
            "--format",
            "json",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
        )
        return json.loads(listed.stdout or "[]")

    def by_service(self) -> dict[str, list[dict]]:
        services: dict[str, list[dict]] = {}
        for container in self.containers():
            service = container["Labels"]["io.podman.compose.service"]
            services.setdefault(service, []).append(container)
        return services


@pytest.fixture
def compose_run(request):
    stage_host_image()  # builds the image once, or fails in one line
    run = ComposeRun(Topics.new("compose-up"))
    yield run
    run.compose("down", "--timeout", "60", timeout=600)


def test_compose_file_runs_the_example_pipeline_100_of_100(compose_run):
    run = compose_run
    run.compose("up", "-d")
    services = run.by_service()
    assert {s: len(c) for s, c in services.items()} == {
        "stage-one": 1,
        "stage-two": 2,
        "stage-three": 1,
    }

    out = wait_for_count(run.topics.three, RECORDS)
    expected = {f"postid_{i}" for i in range(RECORDS)}
    assert missing(expected, out) == [], "records lost"
    assert set(postids(out)) == expected
    assert all(r["value"]["ppm"] == 200.0 for r in out)

    # The source stopped by itself after its records (restart: on-failure leaves it stopped).
    source = run.by_service()["stage-one"][0]
    assert source["State"] == "exited" and source["ExitCode"] == 0, source

    # `stop` sends SIGTERM and waits stop_grace_period: every stage drains and exits 0.
    run.compose("stop", timeout=600)
    for service, containers in run.by_service().items():
        for container in containers:
            assert container["ExitCode"] == 0, (
                f"{service} {container['Names']}: {container['Status']}"
            )
    # Each group committed its whole input.
    assert committed(run.topics.one, run.topics.group_two) == end_offsets(run.topics.one)
    assert committed(run.topics.two, run.topics.group_three) == end_offsets(run.topics.two)
