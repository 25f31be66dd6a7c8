"""The Dockerfile and the example pipeline's compose file parse, and agree with each other.

These checks need no container engine; test_image.py, test_compose_up.py and test_kube_play.py
build and run the image with podman. The Dockerfile is parsed with `dockerfile-parse` (the
parser used by container build tooling); the compose file is interpolated and validated against
the Compose specification the way test_compose.py does for the cluster files. On top, the
checks are the promises these files make: pinned base images that are build arguments, a
named context that can stand in for the compiling stages, a non-root user, SIGTERM as the stop
signal (stage-host drains on it), every plugin a service runs is built and copied into the
image, and the stages of the compose file are the stages of pipelines/example.toml.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from compose_spec import PyCompose
from dockerfile_parse import DockerfileParser

from test_compose import interpolate

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "deploy" / "example-pipeline.yml"
PIPELINE = REPO / "pipelines" / "example.toml"


def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(fileobj=DOCKERFILE.open("rb"))
    return parser


def instructions(kind: str) -> list[str]:
    return [i["value"] for i in dockerfile().structure if i["instruction"] == kind]


def compose(env: dict[str, str] | None = None) -> dict:
    text = interpolate(COMPOSE.read_text(), env or {})
    return PyCompose.from_yaml(text).to_dict()


def plugin_of(service: dict) -> str:
    command = service["command"]
    return command[command.index("--plugin") + 1]


def test_dockerfile_is_multi_stage_with_pinned_bases():
    parser = dockerfile()
    # The compiling stage, the binaries it hands on, and the runtime stage.
    assert parser.parent_images == ["rust:1.95-bookworm", "scratch", "debian:bookworm-slim"]
    for image in parser.parent_images:
        if image == "scratch":
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{image} is not pinned"
    # The FROM images are build arguments whose defaults are Docker Hub's; a build without a
    # registry passes local ones (deploy/build-images).
    assert [i.split()[0] for i in instructions("FROM")] == [
        "${RUST_IMAGE}",
        "scratch",
        "${RUNTIME_IMAGE}",
    ]
    local = DockerfileParser(
        fileobj=DOCKERFILE.open("rb"),
        build_args={"RUNTIME_IMAGE": "localhost/debian:bookworm-slim"},
    )
    assert local.baseimage == "localhost/debian:bookworm-slim"


def test_a_named_context_can_replace_the_compiling_stages():
    """`--build-context binaries=DIR` replaces the stage named `binaries` (Docker and podman
    alike), so the runtime stage copies only from that stage, by the files' bare names."""
    froms = instructions("FROM")
    assert froms[1] == "scratch AS binaries"
    structure = dockerfile().structure
    last_from = max(i for i, step in enumerate(structure) if step["instruction"] == "FROM")
    runtime_copies = [s["value"] for s in structure[last_from:] if s["instruction"] == "COPY"]
    assert runtime_copies and all(c.startswith("--from=binaries ") for c in runtime_copies)
    copied = {Path(p).name for c in runtime_copies for p in c.split()[1:-1]}
    assert copied == {"stage-host", "libstage_one.so", "libstage_two.so", "libstage_three.so"}
    build_images = (REPO / "deploy" / "build-images").read_text()
    for name in copied:
        assert name in build_images, f"deploy/build-images does not stage {name}"


def test_dockerfile_runs_stage_host_as_non_root_and_drains_on_sigterm():
    entrypoint = instructions("ENTRYPOINT")
    assert entrypoint == ['["stage-host"]']
    user = instructions("USER")[-1]
    assert user not in ("root", "0")
    assert instructions("STOPSIGNAL") == ["SIGTERM"]


def test_every_plugin_the_compose_file_runs_is_built_and_copied_into_the_image():
    copied = " ".join(instructions("COPY"))
    built = " ".join(instructions("RUN"))
    for name, service in compose()["services"].items():
        library = Path(plugin_of(service)).name
        assert f"target/release/{library}" in copied, f"{name}: {library} is not in the image"
        crate = re.fullmatch(r"lib(.+)\.so", library).group(1).replace("_", "-")
        assert f"-p {crate}" in built, f"{name}: crate {crate} is not built"


def test_compose_file_is_valid_and_scales_stage_two():
    services = compose()["services"]
    assert set(services) == {"stage-one", "stage-two", "stage-three"}
    assert services["stage-two"]["deploy"]["replicas"] == 2
    assert compose({"STAGE_TWO_REPLICAS": "5"})["services"]["stage-two"]["deploy"]["replicas"] == 5
    for name, service in services.items():
        repository, _, tag = service["image"].rpartition(":")
        assert repository == "stage-host" and tag and tag != "latest", name
        assert service.get("stop_grace_period"), f"{name}: no time to drain on stop"
        assert service["environment"]["STAGE_HOST_BOOTSTRAP_SERVERS"] == "broker:29092"


def test_compose_joins_the_network_of_the_cluster_compose_file():
    cluster = (REPO / "kafka_cluster" / "one-machine.yml").read_text()
    project = re.search(r"^name:\s*(\S+)", cluster, re.MULTILINE).group(1)
    network = compose()["networks"]["kafka"]
    assert network["external"] is True
    assert network["name"] == f"{project}_default"


def test_compose_runs_the_stages_of_the_example_pipeline():
    stages = tomllib.loads(PIPELINE.read_text())["stage"]
    services = compose()["services"]
    assert [Path(s["plugin"]).name for s in stages] == [
        Path(plugin_of(services[name])).name for name in ("stage-one", "stage-two", "stage-three")
    ]


def test_validator_rejects_an_invalid_compose_file():
    """Guards against a validator that accepts anything."""
    broken = COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periodd:", 1)
    with pytest.raises(ValueError):
        PyCompose.from_yaml(interpolate(broken, {}))
