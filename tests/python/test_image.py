"""The image of the repository's Dockerfile, built here by deploy/build-images with podman, runs
stage-host and its plugins; a stage in a container from it processes records against the local
cluster, counted by the independent reader (tests/tools/kafka_tool.py); and a machine that
cannot run containers is told so in one line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from container_engine import (
    BOOTSTRAP_SERVERS,
    BUILD_IMAGES,
    IMAGE_TAG,
    REPO,
    SCHEMA_REGISTRY_URL,
    Topics,
    committed,
    end_offsets,
    engine_env,
    exit_code,
    kafka_tool,
    logs_of,
    podman,
    postids,
    stage_host_image,
    wait_for_count,
    wait_ready,
)

pytestmark = pytest.mark.containers

PLUGINS = {
    "libstage_one.so": ("stage-one", "source"),
    "libstage_two.so": ("stage-two", "stage"),
    "libstage_three.so": ("stage-three", "stage"),
}
RECORDS = 500


def build_images(conf: Path | None = None, user: str | None = None) -> subprocess.CompletedProcess:
    env = engine_env() | ({"CONTAINERS_CONF": str(conf)} if conf else {})
    command = [str(BUILD_IMAGES), "--tag", f"stage-host:{IMAGE_TAG}"]
    if user:
        command = ["runuser", "-u", user, "--", "env", f"PATH={os.environ['PATH']}", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)


def test_build_images_is_idempotent():
    image = stage_host_image()
    first = podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    again = build_images()
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == image
    assert "base image localhost/debian:bookworm-slim present" in again.stderr
    assert podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip() == first, (
        "a second build with nothing changed made a new image"
    )


def test_the_image_is_the_dockerfiles_runtime_stage():
    config = json.loads(podman("image", "inspect", stage_host_image()).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["stage-host"]
    assert config["User"] == "10001"
    assert config["StopSignal"] == "SIGTERM"
    assert "STAGE_HOST_LOG_FORMAT=json" in config["Env"]
    assert config["Labels"]["org.opencontainers.image.title"] == "stage-host"


@pytest.mark.parametrize("library", list(PLUGINS))
def test_stage_host_in_the_image_loads_each_plugin(library):
    """The README's `podman run --rm stage-host:0.1.0 inspect ...`, for each plugin."""
    done = podman(
        "run", "--rm", stage_host_image(), "inspect", f"/opt/stage-host/plugins/{library}"
    )
    fields = dict(re.findall(r"^(name|kind):\s+(\S+)$", done.stdout, re.MULTILINE))
    assert (fields.get("name"), fields.get("kind")) == PLUGINS[library], done.stdout


@pytest.mark.usefixtures("bootstrap_servers", "schema_registry_url")
def test_a_stage_in_a_container_processes_every_record():
    """Stage two from the image, on records the independent client produced: every one comes
    out with ppm 100, and on `podman stop` the stage drains and has committed all of them."""
    topics = Topics.new("image-stage")
    kafka_tool("create-topic", "--topic", topics.one, "--partitions", "4")
    kafka_tool(
        "produce-avro",
        "--topic",
        topics.one,
        "--schema",
        str(REPO / "schemas" / "stage_one.json"),
        "--count",
        str(RECORDS),
    )
    container = f"{topics.run}-stage-two"
    podman(
        "run",
        "--detach",
        "--name",
        container,
        "--network",
        "host",
        "--env",
        f"STAGE_HOST_BOOTSTRAP_SERVERS={BOOTSTRAP_SERVERS}",
        "--env",
        f"STAGE_HOST_SCHEMA_REGISTRY_URL={SCHEMA_REGISTRY_URL}",
        stage_host_image(),
        "--plugin",
        "/opt/stage-host/plugins/libstage_two.so",
        "--metrics-addr",
        "127.0.0.1:0",
        *topics.args_for("libstage_two.so"),
    )
    try:
        wait_ready(container)
        out = wait_for_count(topics.two, RECORDS)
        assert set(postids(out)) == {f"postid_{i}" for i in range(RECORDS)}
        assert all(r["value"]["ppm"] == 100.0 for r in out)
        podman("stop", "--time", "60", container, timeout=120)
        assert exit_code(container) == 0, logs_of(container)
        assert committed(topics.one, topics.group_two) == end_offsets(topics.one)
    finally:
        podman("rm", "--force", container, check=False)


# --- a machine that cannot run containers fails in one line ----------------------------------


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done
    errors = [line for line in done.stderr.splitlines() if line.startswith("build-images: error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_a_machine_that_cannot_start_a_container_is_told_in_one_line(tmp_path):
    # An open-files limit above any kernel's nr_open: the container cannot start anywhere.
    conf = tmp_path / "containers.conf"
    conf.write_text(
        (REPO / "deploy" / "containers.conf")
        .read_text()
        .replace('"nofile=1024:1024"', '"nofile=2000000000:2000000000"')
    )
    line = one_error_line(build_images(conf))
    assert "this machine cannot run containers with podman:" in line
    assert "rlimit" in line


def test_a_broken_engine_is_told_in_one_line(tmp_path):
    conf = tmp_path / "containers.conf"
    conf.write_text('[engine]\nruntime = "no-such-runtime"\n')
    line = one_error_line(build_images(conf))
    assert "podman does not work with CONTAINERS_CONF=" in line
    assert "no-such-runtime" in line


def test_a_user_without_user_namespaces_is_told_in_one_line():
    """Rootless podman needs user namespaces and subordinate ids; `nobody` has none."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run build-images as another user (CI runs as root)")
    line = one_error_line(build_images(user="nobody"))
    assert "rootless podman cannot run containers" in line
