"""The compose files for real deployments parse and validate against the Compose specification.

There is no Docker engine where the tests run, so this does what `docker compose config` does
before it talks to the engine: interpolate variables from kafka_cluster/.env, then parse the
result with `compose_spec` (a typed, spec-complete parser that rejects unknown keys and bad
values). On top of the spec, it checks what these files promise: pinned images, a healthcheck
on every service, dependencies on services that exist, no ZooKeeper.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from compose_spec import PyCompose

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "kafka_cluster"
COMPOSE_FILES = ["one-machine.yml", "network.yml"]
EXPECTED_SERVICES = {"broker", "schema-registry", "rest-proxy", "kafka-ui"}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, and $$ (a literal $).
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        env[name.strip()] = value.strip().strip("'\"")
    return env


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation; a `?` variable that is unset is an error."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = env.get(name)
        if op in (":-", ":?") and value == "":
            value = None
        if value is not None:
            return value
        if op is None:
            return ""
        if op.endswith("?"):
            raise ValueError(f"required variable {name} is not set: {arg}")
        return arg

    # Comments are not interpolated by compose; drop them so their ${...} examples are ignored.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return _VARIABLE.sub(substitute, "\n".join(lines))


def load(name: str, env: dict[str, str] | None = None) -> dict:
    if env is None:
        env = read_env_file(CLUSTER_DIR / ".env")
    text = interpolate((CLUSTER_DIR / name).read_text(), env)
    return PyCompose.from_yaml(text).to_dict()


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_is_valid(name):
    compose = load(name)
    services = compose["services"]
    assert set(services) == EXPECTED_SERVICES
    for service_name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{service_name}: image {image} is not pinned"
        assert "zookeeper" not in image
        assert service.get("healthcheck", {}).get("test"), f"{service_name}: no healthcheck"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{service_name} depends on unknown {dependency}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_broker_runs_kraft_without_zookeeper(name):
    broker = load(name)["services"]["broker"]["environment"]
    assert broker["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert not any("ZOOKEEPER" in key for key in broker)
    listeners = {entry.split("://")[0] for entry in broker["KAFKA_LISTENERS"].split(",")}
    advertised = {entry.split("://")[0] for entry in broker["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    protocol_map = {entry.split(":")[0] for entry in broker["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    assert advertised <= listeners <= protocol_map


def test_network_file_advertises_the_external_address():
    compose = load("network.yml", {"EXTERNAL_LISTENER_ADDRESS": "kafka.example.internal"})
    advertised = compose["services"]["broker"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://kafka.example.internal:29094" in advertised


def test_network_file_requires_the_external_address():
    with pytest.raises(ValueError, match="EXTERNAL_LISTENER_ADDRESS"):
        load("network.yml", {})


def test_env_example_names_every_required_variable():
    example = read_env_file(CLUSTER_DIR / ".env.example")
    assert example.get("EXTERNAL_LISTENER_ADDRESS")
    load("network.yml", example)


def test_validator_rejects_an_invalid_file():
    """Guards against a validator that accepts anything."""
    broken = (CLUSTER_DIR / "one-machine.yml").read_text().replace("healthcheck:", "healtcheck:", 1)
    with pytest.raises(ValueError):
        PyCompose.from_yaml(interpolate(broken, {}))
