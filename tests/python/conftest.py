"""Shared settings of the Python tests: where the cluster is, and what to do without one.

The addresses come from the environment (defaults: the local cluster of
kafka_cluster/local-cluster). Tests that need a service skip when it does not answer, unless
STAGE_HOST_REQUIRE_CLUSTER is set (as scripts/test and CI do): then they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlparse

import pytest
import requests


def _cluster_required() -> bool:
    return os.environ.get("STAGE_HOST_REQUIRE_CLUSTER", "") not in ("", "0")


def _unavailable(what: str) -> None:
    message = f"{what}; start the local cluster with `kafka_cluster/local-cluster up`"
    if _cluster_required():
        pytest.fail(message + " (STAGE_HOST_REQUIRE_CLUSTER is set)", pytrace=False)
    pytest.skip(message)


def _tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _http_answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=10).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    servers = os.environ.get("BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    host, _, port = servers.split(",")[0].rpartition(":")
    if not _tcp_answers(host, int(port)):
        _unavailable(f"no Kafka broker answers at {servers}")
    return servers


@pytest.fixture(scope="session")
def schema_registry_url() -> str:
    url = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081").rstrip("/")
    if not _http_answers(f"{url}/subjects"):
        _unavailable(f"no schema registry answers at {url}")
    return url


@pytest.fixture(scope="session")
def rest_proxy_url() -> str:
    url = os.environ.get("KAFKA_REST_URL", "http://127.0.0.1:8082").rstrip("/")
    if not _http_answers(f"{url}/v3/clusters"):
        _unavailable(f"no Kafka REST proxy answers at {url} ({urlparse(url).netloc})")
    return url


@pytest.fixture
def unique_name(request) -> str:
    """A topic or group name no other test run uses."""
    return f"py-{request.node.name[:40]}-{uuid.uuid4().hex[:12]}".replace("[", "-").replace("]", "")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "containers: runs containers with podman (container_engine.py); leave out with "
        "-m 'not containers'",
    )
