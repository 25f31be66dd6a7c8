"""deploy/k8s played by `podman kube play`, and what podman leaves to a control plane.

podman 4.3 plays Pods, Deployments (each replica a pod named `<deployment>-pod-<i>`),
ConfigMaps and PersistentVolumeClaims on one host. It is a kubelet, not a control plane:

- a StatefulSet is skipped without a word (`kube play` succeeds and starts nothing), and so
  are the Namespace, the PodDisruptionBudgets and the headless Services;
- nothing asks a readinessProbe; a livenessProbe becomes a podman healthcheck that runs
  `curl` inside the container (the image has none) from a systemd timer (none here);
- `terminationGracePeriodSeconds` does not become the containers' stop timeout (podman's is
  10 s): whoever stops a pod passes the grace period (`podman pod stop --time`);
- a Deployment's `strategy`, `minReadySeconds` and `progressDeadlineSeconds` mean nothing to
  it: `kube play --replace` deletes every pod, then creates the new ones;
- it fills an env var from `fieldRef: metadata.name`, but passes `$(VAR)` references in env
  values on literally (`example.$(POD_NAME)`), where the kubelet expands them: so the
  exactly-once StatefulSet's replicas would all get one transactional id and fence each other.

So the tests play what podman plays (the built kustomization: ConfigMap, Deployments, and the
kinds it skips), and do the rest themselves: each StatefulSet becomes the Pods its controller
would create (`<statefulset>-<ordinal>`, from its template, all at once as
`podManagementPolicy: Parallel` says); readiness is asked of `/health/ready`, the
readinessProbe's path (container_engine.wait_ready); a rollout is driven the way the
Deployment controller drives it (test_kube_play.py). What podman ignores is checked offline,
against the Kubernetes schemas, by test_k8s.py.

The local edits to what is played, and nothing else:
- the image: the locally built one (the kustomization's `images:` entry, as a user sets
  their registry);
- the ConfigMap's addresses: the local cluster (as a user sets theirs);
- topics and consumer groups: unique per test, because the cluster is shared (`--input-topic`,
  `--output-topic`, `--group-id` added to the args);
- `--metrics-addr 0.0.0.0:0` and no `ports`: every pod shares the host's network here, so each
  takes a free port (logged at start) instead of 9300 in a network of its own, and podman
  refuses containerPorts on the host's network ("PortMappings can only be used with Bridge
  or slirp4netns networking");
- workload names start with the test's run id: podman's pod names are the host's, and a
  StatefulSet pod's name is its transactional id's suffix;
- in the Pods made here, `$(VAR)` references in env values are expanded as the kubelet
  expands them (see `expand_env`); a Deployment that podman plays must have none.
"""

from __future__ import annotations

import copy
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from container_engine import (
    BOOTSTRAP_SERVERS,
    SCHEMA_REGISTRY_URL,
    Topics,
    exit_code,
    logs_of,
    podman,
)
from test_k8s import K8S, build, containers, image_name, workloads

VARIANTS = {"at-least-once": K8S, "exactly-once": K8S / "exactly-once"}
# Kinds `podman kube play` 4.3 acts on; it skips the others in silence.
PLAYED_KINDS = {"Pod", "Deployment", "ConfigMap", "PersistentVolumeClaim"}


def set_arg(args: list[str], flag: str, value: str) -> None:
    """Sets `flag value` in a container's args, replacing the value it has."""
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]


def local_objects(variant: str, image: str) -> list[dict]:
    """The variant's objects, built as `kubectl kustomize` builds them, with the image and the
    cluster's addresses set to the local ones."""
    objects = build(VARIANTS[variant])
    for obj in objects:
        for container in containers(obj):
            assert image_name(container["image"]).endswith("/stage-host"), container["image"]
            container["image"] = image
        if obj["kind"] == "ConfigMap" and "STAGE_HOST_BOOTSTRAP_SERVERS" in obj.get("data", {}):
            obj["data"]["STAGE_HOST_BOOTSTRAP_SERVERS"] = BOOTSTRAP_SERVERS
            obj["data"]["STAGE_HOST_SCHEMA_REGISTRY_URL"] = SCHEMA_REGISTRY_URL
    return objects


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand_env(env: list[dict], pod_name: str) -> list[dict]:
    """What the kubelet does to a container's env: `fieldRef: metadata.name` is the pod's name,
    and `$(NAME)` in a value is the value of an env var defined before it (`$$` is a `$`;
    a reference to an undefined variable stays as it is)."""
    defined: dict[str, str] = {}
    expanded = []
    for var in env:
        var = copy.deepcopy(var)
        field_path = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field_path == "metadata.name":
            var = {"name": var["name"], "value": pod_name}
        if "value" in var:
            var["value"] = _REFERENCE.sub(
                lambda m: "$" if m.group(0) == "$$" else defined.get(m.group(1), m.group(0)),
                var["value"],
            )
            defined[var["name"]] = var["value"]
        expanded.append(var)
    return expanded


def workload(objects: list[dict], name: str) -> dict:
    return next(w for w in workloads(objects) if w["metadata"]["name"] == name)


@dataclass
class KubePlay:
    """Plays a variant's objects with `podman kube play --network host`; `remove_all` removes
    every pod of the run."""

    topics: Topics
    objects: list[dict]
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kube-play-")))

    def template(self, template: dict) -> dict:
        """A pod template with the local edits (module doc)."""
        template = copy.deepcopy(template)
        for container in template["spec"]["containers"]:
            args = container["args"]
            isolation = self.topics.args_for(args[args.index("--plugin") + 1])
            for flag, value in zip(isolation[::2], isolation[1::2], strict=True):
                set_arg(args, flag, value)
            set_arg(args, "--metrics-addr", "0.0.0.0:0")
            container.pop("ports", None)
        return template

    def pod(self, template: dict, name: str) -> dict:
        """The Pod a controller makes from `template` under `name`."""
        template = self.template(template)
        pod_name = f"{self.topics.run}-{name}"
        for container in template["spec"]["containers"]:
            if "env" in container:
                container["env"] = expand_env(container["env"], pod_name)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": template["metadata"].get("labels", {}),
                "annotations": template["metadata"].get("annotations", {}),
            },
            "spec": template["spec"],
        }

    def documents(self) -> list[dict]:
        """What is played: every object of the kustomization (podman skips the kinds it does
        not play), the workloads renamed and their templates edited, and each StatefulSet's
        Pods."""
        played = []
        for obj in copy.deepcopy(self.objects):
            if obj["kind"] == "Deployment":
                for container in obj["spec"]["template"]["spec"]["containers"]:
                    for var in container.get("env", []):
                        assert "$(" not in var.get("value", ""), (
                            f"{obj['metadata']['name']}: podman passes {var['value']} on literally"
                        )
            if obj["kind"] in ("Deployment", "StatefulSet"):
                obj["metadata"]["name"] = f"{self.topics.run}-{obj['metadata']['name']}"
                obj["spec"]["template"] = self.template(obj["spec"]["template"])
            played.append(obj)
        for statefulset in (o for o in self.objects if o["kind"] == "StatefulSet"):
            for name in self.pod_names(statefulset["metadata"]["name"]):
                played.append(self.pod(statefulset["spec"]["template"], name))
        return played

    def play(self, documents: list[dict], label: str) -> None:
        path = self.directory / f"{label}.yaml"
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        podman("kube", "play", "--network", "host", str(path))

    def play_all(self) -> None:
        self.play(self.documents(), "all")

    def play_pod(self, template: dict, name: str) -> str:
        """Plays one more pod from `template`, as a controller creates one; returns its
        container."""
        config_maps = [o for o in self.objects if o["kind"] == "ConfigMap"]
        self.play([*config_maps, self.pod(template, name)], name)
        return self.container(name)

    def pod_names(self, name: str) -> list[str]:
        """The pods of workload `name` (without the run's prefix): podman's names for a
        Deployment's, the controller's for a StatefulSet's."""
        found = workload(self.objects, name)
        replicas = found["spec"].get("replicas", 1)
        if found["kind"] == "StatefulSet":
            return [f"{name}-{ordinal}" for ordinal in range(replicas)]
        return [f"{name}-pod-{i}" for i in range(replicas)]

    def container(self, pod: str) -> str:
        """podman names a pod's container `<pod>-<container>`."""
        return f"{self.topics.run}-{pod}-stage-host"

    def stop(self, pod: str, grace_seconds: int) -> int:
        """Deletes a pod as the kubelet does: SIGTERM (the image's STOPSIGNAL), SIGKILL after
        the grace period. Returns the stage's exit code; 0 is a clean drain."""
        podman(
            "pod",
            "stop",
            "--time",
            str(grace_seconds),
            f"{self.topics.run}-{pod}",
            timeout=grace_seconds + 60,
        )
        return exit_code(self.container(pod))

    def remove_all(self) -> None:
        listed = podman("pod", "ps", "--format", "{{.Name}}", check=False).stdout.split()
        for pod in listed:
            if pod.startswith(f"{self.topics.run}-"):
                podman("pod", "rm", "--force", pod, check=False)

    def logs(self, pod: str) -> str:
        return logs_of(self.container(pod))
