"""The Kubernetes manifests of deploy/k8s/ are valid objects and keep the promises they make.

There is no cluster and no kustomize where the tests run. `build()` does what `kubectl
kustomize` does with the fields these kustomizations use (resources, namespace, images) and
refuses any other field, so a kustomization that grows one fails here until this file learns
it. Every object is validated with `kubernetes-validate` (the Kubernetes JSON schemas it
bundles, strict: an unknown field is an error) for each pinned Kubernetes version. On top,
the checks are what the files promise: the stages of pipelines/example.toml run from plugins
the Dockerfile builds into the image; probes on the health endpoints and the Prometheus
annotations on the port of --metrics-addr; a rollout of a transforming stage that is the hot
swap (a new pod joins before an old one drains) and a source that is never run twice; a
PodDisruptionBudget per transforming stage; at-least-once in deploy/k8s and stable, unique
transactional ids in deploy/k8s/exactly-once.

Each check returns the problems it finds, so that the tests at the end can show it finds them
in broken copies of the manifests.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from test_containers import instructions

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
PIPELINE = REPO / "pipelines" / "example.toml"
VARIANTS = {"at-least-once": K8S, "exactly-once": K8S / "exactly-once"}

# The oldest Kubernetes version the manifests are for (every field they use is GA there, e.g.
# a PodDisruptionBudget's unhealthyPodEvictionPolicy) and the newest whose schemas the pinned
# kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.31", "1.37")

IMAGE = "stage-host"
REGISTRY_IMAGE = "registry.example.com/stage-host"
PLUGIN_DIR = "/opt/stage-host/plugins"
# The longest a drain may take before the kubelet sends SIGKILL (the compose file gives 60 s).
MIN_GRACE_SECONDS = 60

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
CLUSTER_SCOPED_KINDS = {"Namespace"}
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images"}


# --- building: what `kubectl kustomize` makes of a directory --------------------------------


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization_of(directory: Path) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def resource_files(directory: Path) -> set[Path]:
    """Every manifest file a kustomization includes, through the kustomizations it includes."""
    files = set()
    for resource in kustomization_of(directory).get("resources", []):
        path = (directory / resource).resolve()
        files |= resource_files(path) if path.is_dir() else {path}
    return files


def image_name(image: str) -> str:
    """`registry/name:tag` or `name@digest` without the tag or digest."""
    image = image.split("@")[0]
    head, _, tail = image.rpartition(":")
    return head if head and "/" not in tail else image


def set_images(obj: dict, images: list[dict]) -> None:
    """kustomize's `images:` transformer, for the containers of a workload."""
    for container in containers(obj):
        for image in images:
            if image_name(container["image"]) != image["name"]:
                continue
            name = image.get("newName", image["name"])
            old_tag = container["image"][len(image_name(container["image"])) :]
            tag = f":{image['newTag']}" if "newTag" in image else old_tag
            if "digest" in image:
                tag = f"@{image['digest']}"
            container["image"] = f"{name}{tag}"


def build(directory: Path) -> list[dict]:
    kustomization = kustomization_of(directory)
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1", directory
    assert kustomization["kind"] == "Kustomization", directory
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unknown, (
        f"{directory / 'kustomization.yaml'} uses {sorted(unknown)}, which build() in "
        f"{Path(__file__).name} does not apply: teach it, or the objects checked here are not "
        "the objects applied"
    )
    objects = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            objects += build(path)
        else:
            # kustomize loads files only from within the kustomization's directory.
            assert path.is_relative_to(directory.resolve()), (
                f"{directory}: resource {resource} lies outside the kustomization; kustomize "
                "refuses to load it (include its directory as a kustomization instead)"
            )
            objects += load_documents(path)
    namespace = kustomization.get("namespace")
    for obj in objects:
        if namespace and obj["kind"] not in CLUSTER_SCOPED_KINDS:
            obj["metadata"]["namespace"] = namespace
        set_images(obj, kustomization.get("images", []))
    return objects


# --- reading the objects ---------------------------------------------------------------------


def containers(obj: dict) -> list[dict]:
    if obj["kind"] not in WORKLOAD_KINDS:
        return []
    return obj["spec"]["template"]["spec"]["containers"]


def workloads(objects: list[dict]) -> list[dict]:
    return [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS]


def named(objects: list[dict], kind: str, name: str) -> dict | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def arg_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1] if i + 1 < len(args) else ""
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return None


def plugin_of(workload: dict) -> str | None:
    return arg_value(containers(workload)[0].get("args", []), "--plugin")


def crate_of(plugin: str) -> str:
    library = Path(plugin).name
    match = re.fullmatch(r"lib(.+)\.so", library)
    assert match, f"{plugin} is not a shared library's name"
    return match.group(1).replace("_", "-")


def is_source(plugin: str | None) -> bool:
    """A source exports itself with `export_source!`, a transforming stage with `export_stage!`."""
    if plugin is None:
        return False  # reported by stage_problems
    code = (REPO / "plugins" / crate_of(plugin) / "src" / "lib.rs").read_text()
    return "export_source!" in code


def pipeline_stages() -> list[dict]:
    return tomllib.loads(PIPELINE.read_text())["stage"]


def label_selector_matches(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, f"selector {selector}: only matchLabels is read here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def resolve_port(container: dict, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    return next(
        (p["containerPort"] for p in container.get("ports", []) if p.get("name") == port), None
    )


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# --- checks: each returns the problems it finds ----------------------------------------------


def schema_problems(objects: list[dict], version: str) -> list[str]:
    problems = []
    for obj in objects:
        what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"{what} (Kubernetes {e.version}): {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"{what}: {e.message}")
    return problems


def object_problems(objects: list[dict], namespace: str) -> list[str]:
    problems = []
    seen = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in seen:
            problems.append(f"{key[0]}/{key[1]} is defined twice")
        seen.add(key)
    if named(objects, "Namespace", namespace) is None:
        problems.append(f"no Namespace {namespace} among the resources")
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        template_labels = workload["spec"]["template"]["metadata"].get("labels", {})
        if not label_selector_matches(workload["spec"]["selector"], template_labels):
            problems.append(f"{name}: the selector does not match the pod template's labels")
        for other in workloads(objects):
            if other is not workload and label_selector_matches(
                workload["spec"]["selector"],
                other["spec"]["template"]["metadata"].get("labels", {}),
            ):
                problems.append(
                    f"{name}: the selector also selects the pods of {other['metadata']['name']}"
                )
    return problems


def stage_problems(objects: list[dict]) -> list[str]:
    """The workloads run the stages of pipelines/example.toml, from the image, as it promises."""
    problems = []
    copied = " ".join(instructions("COPY"))
    built = " ".join(instructions("RUN"))
    by_plugin = {}
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        if len(containers(workload)) != 1:
            problems.append(f"{name}: one container (stage-host) per pod expected")
            continue
        plugin = plugin_of(workload)
        if plugin is None:
            problems.append(f"{name}: no --plugin argument")
            continue
        by_plugin.setdefault(Path(plugin).name, []).append(workload)
        library = Path(plugin).name
        if str(Path(plugin).parent) != PLUGIN_DIR:
            problems.append(
                f"{name}: plugin {plugin} is not in {PLUGIN_DIR}, where the image has them"
            )
        if f"target/release/{library}" not in copied or PLUGIN_DIR not in copied:
            problems.append(f"{name}: the Dockerfile does not copy {library} into the image")
        if f"-p {crate_of(plugin)}" not in built:
            problems.append(f"{name}: the Dockerfile does not build crate {crate_of(plugin)}")
        image = containers(workload)[0]["image"]
        repository, _, tag = image.rpartition(":")
        if repository != REGISTRY_IMAGE or not tag or tag == "latest":
            problems.append(f"{name}: image {image} is not {REGISTRY_IMAGE}:<pinned tag>")

    for stage in pipeline_stages():
        library = Path(stage["plugin"]).name
        running = by_plugin.pop(library, [])
        if len(running) != 1:
            problems.append(
                f"stage {stage['name']} ({library}) runs in {len(running)} workloads, not 1"
            )
            continue
        workload = running[0]
        name = workload["metadata"]["name"]
        args = containers(workload)[0].get("args", [])
        if workload["spec"].get("replicas", 1) != stage.get("replicas", 1):
            problems.append(
                f"{name}: {workload['spec'].get('replicas', 1)} replicas, the pipeline has "
                f"{stage.get('replicas', 1)}"
            )
        if (arg_value(args, "--on-error") or "fail") != stage.get("on_error", "fail"):
            problems.append(
                f"{name}: --on-error is not the pipeline's {stage.get('on_error', 'fail')}"
            )
        config = json.loads(arg_value(args, "--config-json") or "{}")
        wanted = dict(stage.get("config", {}))
        if is_source(stage["plugin"]):
            # A Deployment restarts a container that exits, even with 0: the source must never
            # finish, and must resume from its checkpoint instead of starting over.
            wanted |= {"records": 0, "resume": True}
        if config != wanted:
            problems.append(f"{name}: --config-json is {config}, expected {wanted}")
    for library, extra in by_plugin.items():
        problems.append(
            f"{[w['metadata']['name'] for w in extra]} run {library}, not a stage of the pipeline"
        )
    return problems


def health_problems(objects: list[dict]) -> list[str]:
    """Probes on the health endpoints and scrape annotations, on the port of --metrics-addr."""
    problems = []
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        container = containers(workload)[0]
        metrics_addr = arg_value(container.get("args", []), "--metrics-addr")
        match = re.fullmatch(r"0\.0\.0\.0:(\d+)", metrics_addr or "")
        if not match:
            problems.append(
                f"{name}: --metrics-addr {metrics_addr} does not listen on 0.0.0.0:<port>"
            )
            continue
        port = int(match.group(1))
        if port not in [p["containerPort"] for p in container.get("ports", [])]:
            problems.append(f"{name}: port {port} of --metrics-addr is not a containerPort")
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            get = container.get(probe, {}).get("httpGet")
            if get is None:
                problems.append(f"{name}: no {probe} over HTTP")
                continue
            if get.get("path") != path:
                problems.append(f"{name}: {probe} asks {get.get('path')}, not {path}")
            if resolve_port(container, get.get("port")) != port:
                problems.append(
                    f"{name}: {probe} asks port {get.get('port')}, not {port} of --metrics-addr"
                )
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        expected = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }
        for key, value in expected.items():
            if annotations.get(key) != value:
                problems.append(
                    f"{name}: pod annotation {key} is {annotations.get(key)!r}, not {value!r}"
                )
        grace = workload["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        if grace < MIN_GRACE_SECONDS:
            problems.append(
                f"{name}: terminationGracePeriodSeconds {grace} is shorter than a drain "
                f"({MIN_GRACE_SECONDS})"
            )
        # Every stage finds the cluster through the ConfigMap.
        config_maps = [
            e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e
        ]
        data = {}
        for config_map in config_maps:
            found = named(objects, "ConfigMap", config_map)
            if found is None:
                problems.append(f"{name}: ConfigMap {config_map} is not among the resources")
            else:
                data |= found.get("data", {})
        for variable in ("STAGE_HOST_BOOTSTRAP_SERVERS", "STAGE_HOST_SCHEMA_REGISTRY_URL"):
            if variable not in data:
                problems.append(f"{name}: {variable} does not come from a ConfigMap")
    return problems


def rollout_problems(objects: list[dict], exactly_once: bool) -> list[str]:
    """A source never runs twice; a transforming stage's rollout is the swap (or, exactly-once,
    replaces pods one at a time under the same names)."""
    problems = []
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        spec = workload["spec"]
        if is_source(plugin_of(workload)):
            if (
                workload["kind"] != "Deployment"
                or spec.get("strategy", {}).get("type") != "Recreate"
            ):
                problems.append(f"{name}: a source must be a Deployment with strategy Recreate")
            if spec.get("replicas", 1) != 1:
                problems.append(f"{name}: a source runs as one replica, not {spec.get('replicas')}")
        elif exactly_once:
            if workload["kind"] != "StatefulSet":
                problems.append(
                    f"{name}: exactly-once needs a StatefulSet (stable transactional ids)"
                )
            elif (
                spec.get("updateStrategy", {"type": "RollingUpdate"}).get("type") != "RollingUpdate"
            ):
                problems.append(f"{name}: updateStrategy must be RollingUpdate")
        else:
            strategy = spec.get("strategy", {})
            rolling = strategy.get("rollingUpdate", {})
            if (
                workload["kind"] != "Deployment"
                or strategy.get("type") != "RollingUpdate"
                or rolling.get("maxSurge") != 1
                or rolling.get("maxUnavailable") != 0
            ):
                problems.append(
                    f"{name}: a transforming stage rolls out as the swap: a Deployment with "
                    f"RollingUpdate maxSurge 1, maxUnavailable 0 (has {strategy})"
                )
    return problems


def disruption_budget_problems(objects: list[dict]) -> list[str]:
    problems = []
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        labels = workload["spec"]["template"]["metadata"].get("labels", {})
        matching = [b for b in budgets if label_selector_matches(b["spec"]["selector"], labels)]
        if is_source(plugin_of(workload)):
            continue
        if len(matching) != 1:
            problems.append(f"{name}: {len(matching)} PodDisruptionBudgets select its pods, not 1")
            continue
        budget = matching[0]["spec"]
        replicas = workload["spec"].get("replicas", 1)
        max_unavailable, min_available = budget.get("maxUnavailable"), budget.get("minAvailable")
        if (
            max_unavailable in (0, "0%")
            or min_available == "100%"
            or (isinstance(min_available, int) and min_available >= replicas)
        ):
            problems.append(
                f"{name}: its PodDisruptionBudget allows no eviction and would block node drains"
            )
    return problems


def delivery_problems(objects: list[dict], exactly_once: bool) -> list[str]:
    """At-least-once in deploy/k8s; in exactly-once/, every stage transactional and each
    transforming replica with a transactional id of its own that its successor keeps."""
    problems = []
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        container = containers(workload)[0]
        args = container.get("args", [])
        env = env_of(container)
        has_id = "--transactional-id" in args or "STAGE_HOST_TRANSACTIONAL_ID" in env
        if not exactly_once:
            if "--exactly-once" in args or has_id:
                problems.append(
                    f"{name}: deploy/k8s runs at-least-once; exactly-once is exactly-once/"
                )
            continue
        if "--exactly-once" not in args:
            problems.append(f"{name}: no --exactly-once")
        if is_source(plugin_of(workload)):
            # The source's default identity (output topic and stage name) is the same in every pod.
            if has_id:
                problems.append(
                    f"{name}: a source keeps its default transactional id (its checkpoints' key)"
                )
            continue
        transactional_id = env.get("STAGE_HOST_TRANSACTIONAL_ID", {}).get("value", "")
        pod_name = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if "$(POD_NAME)" not in transactional_id or pod_name != "metadata.name":
            problems.append(
                f"{name}: STAGE_HOST_TRANSACTIONAL_ID must contain $(POD_NAME), the pod's stable "
                "name (POD_NAME from metadata.name, defined before it)"
            )
        elif list(env).index("POD_NAME") > list(env).index("STAGE_HOST_TRANSACTIONAL_ID"):
            problems.append(f"{name}: POD_NAME must be defined before STAGE_HOST_TRANSACTIONAL_ID")
        service = named(objects, "Service", workload["spec"].get("serviceName", ""))
        if service is None or service["spec"].get("clusterIP") != "None":
            problems.append(
                f"{name}: its serviceName names no headless Service among the resources"
            )
    return problems


# --- the tests -------------------------------------------------------------------------------


def assert_none(problems: list[str]) -> None:
    assert not problems, "\n".join(["", *problems])


@pytest.fixture(params=list(VARIANTS), scope="module")
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def objects(variant) -> list[dict]:
    return build(VARIANTS[variant])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_kubernetes(objects, version):
    assert_none(schema_problems(objects, version))


def test_every_manifest_is_applied_by_a_kustomization():
    applied = set().union(*(resource_files(directory) for directory in VARIANTS.values()))
    manifests = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert manifests - applied == set(), "manifests no kustomization applies"
    assert applied <= manifests


def test_objects_are_consistent(objects, variant):
    namespace = kustomization_of(VARIANTS[variant])["namespace"]
    assert_none(object_problems(objects, namespace))
    assert all(
        o["metadata"].get("namespace") == namespace for o in objects if o["kind"] != "Namespace"
    )


def test_workloads_run_the_example_pipeline_from_the_image(objects):
    assert_none(stage_problems(objects))


def test_probes_and_scrape_annotations_use_the_metrics_port(objects):
    assert_none(health_problems(objects))


def test_rollouts_swap_transforming_stages_and_recreate_the_source(objects, variant):
    assert_none(rollout_problems(objects, variant == "exactly-once"))


def test_each_transforming_stage_has_a_disruption_budget(objects):
    assert_none(disruption_budget_problems(objects))


def test_delivery_guarantee_and_transactional_ids(objects, variant):
    assert_none(delivery_problems(objects, variant == "exactly-once"))


def test_the_kustomization_sets_the_image():
    objects = build(K8S)
    images = {c["image"] for w in workloads(objects) for c in containers(w)}
    assert len(images) == 1 and next(iter(images)).startswith(REGISTRY_IMAGE + ":")
    # In the files themselves, the name the Dockerfile's image is built under.
    raw = [d for f in resource_files(K8S) for d in load_documents(f)]
    assert {image_name(c["image"]) for w in workloads(raw) for c in containers(w)} == {IMAGE}


# --- the checks find what they are for -------------------------------------------------------


def _workload(objects, name):
    return named(objects, "Deployment", name) or named(objects, "StatefulSet", name)


def _container(objects, name):
    return containers(_workload(objects, name))[0]


def _set_arg(objects, name, flag, value):
    args = _container(objects, name)["args"]
    args[args.index(flag) + 1] = value


BREAKAGES = {
    "misspelt field": (
        lambda o: _workload(o, "stage-two")["spec"]["template"]["spec"].update(
            terminationGracePeriodSecond=60
        ),
        lambda o: schema_problems(o, KUBERNETES_VERSIONS[0]),
        "terminationGracePeriodSecond",
    ),
    "replicas as a string": (
        lambda o: _workload(o, "stage-two")["spec"].update(replicas="2"),
        lambda o: schema_problems(o, KUBERNETES_VERSIONS[-1]),
        "is not of type 'integer'",
    ),
    "probe without a port": (
        lambda o: _container(o, "stage-three")["readinessProbe"]["httpGet"].pop("port"),
        lambda o: schema_problems(o, KUBERNETES_VERSIONS[-1]),
        "'port' is a required property",
    ),
    "readiness on the liveness path": (
        lambda o: _container(o, "stage-two")["readinessProbe"]["httpGet"].update(
            path="/health/live"
        ),
        lambda o: health_problems(o),
        "readinessProbe asks /health/live",
    ),
    "scrape port not the metrics port": (
        lambda o: _set_arg(o, "stage-three", "--metrics-addr", "0.0.0.0:9400"),
        lambda o: health_problems(o),
        "port 9400 of --metrics-addr is not a containerPort",
    ),
    "old pod drains before the new one is ready": (
        lambda o: _workload(o, "stage-two")["spec"]["strategy"]["rollingUpdate"].update(
            maxUnavailable=1
        ),
        lambda o: rollout_problems(o, exactly_once=False),
        "maxSurge 1, maxUnavailable 0",
    ),
    "source rolled out beside itself": (
        lambda o: _workload(o, "stage-one")["spec"].update(strategy={"type": "RollingUpdate"}),
        lambda o: rollout_problems(o, exactly_once=False),
        "strategy Recreate",
    ),
    "budget selecting no pod": (
        lambda o: named(o, "PodDisruptionBudget", "stage-three")["spec"]["selector"][
            "matchLabels"
        ].update({"app.kubernetes.io/component": "stage-3"}),
        lambda o: disruption_budget_problems(o),
        "stage-three: 0 PodDisruptionBudgets",
    ),
    "budget that blocks node drains": (
        lambda o: named(o, "PodDisruptionBudget", "stage-two")["spec"].update(maxUnavailable=0),
        lambda o: disruption_budget_problems(o),
        "would block node drains",
    ),
    "plugin the image does not have": (
        lambda o: _set_arg(o, "stage-two", "--plugin", f"{PLUGIN_DIR}/libstage_four.so"),
        lambda o: stage_problems(o),
        "libstage_four.so",
    ),
    "too few replicas": (
        lambda o: _workload(o, "stage-two")["spec"].update(replicas=1),
        lambda o: stage_problems(o),
        "1 replicas, the pipeline has 2",
    ),
    "source that finishes": (
        lambda o: _set_arg(
            o, "stage-one", "--config-json", '{"records": 100, "rate_per_second": 50}'
        ),
        lambda o: stage_problems(o),
        "stage-one: --config-json",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_checks_reject_a_broken_manifest(breakage):
    """Guards against checks (and a validator) that accept anything."""
    break_it, check, expected = BREAKAGES[breakage]
    objects = build(K8S)
    assert not any(expected in problem for problem in check(objects)), (
        "the intact manifests have it"
    )
    broken = copy.deepcopy(objects)
    break_it(broken)
    problems = check(broken)
    assert any(expected in problem for problem in problems), problems


def test_checks_reject_an_exactly_once_stage_without_a_stable_id():
    objects = build(VARIANTS["exactly-once"])
    env = _container(objects, "stage-two")["env"]
    next(e for e in env if e["name"] == "STAGE_HOST_TRANSACTIONAL_ID")["value"] = (
        "example.stage-two"
    )
    assert any(
        "must contain $(POD_NAME)" in p for p in delivery_problems(objects, exactly_once=True)
    )
    # ...and a deployment of it, which has no stable pod names.
    objects = build(VARIANTS["exactly-once"])
    _workload(objects, "stage-three")["kind"] = "Deployment"
    assert any("needs a StatefulSet" in p for p in rollout_problems(objects, exactly_once=True))
    # At-least-once must not turn on transactions unannounced.
    objects = build(K8S)
    _container(objects, "stage-two")["args"].append("--exactly-once")
    assert any("runs at-least-once" in p for p in delivery_problems(objects, exactly_once=False))
