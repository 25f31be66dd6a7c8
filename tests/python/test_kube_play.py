"""The Kubernetes manifests of deploy/k8s run: their pods, played by `podman kube play` from the
image of the repository's Dockerfile, deliver the example pipeline against the local cluster.

kube_pods.py says what podman runs of the manifests and what the test does in the control
plane's place. Each test runs the pipeline as the manifests have it: a source that never
finishes (`records: 0`, 50 records/s), two replicas of stage two, one of stage three. Once 100
records have reached stage three's output, the source's pod is deleted (SIGTERM: it drains),
and then every record the source produced must arrive, counted by the independent reader
(tests/tools/kafka_tool.py, confluent-kafka, read_committed). Every pod is deleted at the end
and must have drained cleanly (exit 0), with the groups' committed offsets at the end of their
input.
"""

from __future__ import annotations

import copy
import subprocess
import time

import pytest

from container_engine import (
    DELIVERY_DEADLINE_SECONDS,
    Topics,
    committed,
    end_offsets,
    engine_env,
    is_ready,
    missing,
    podman,
    postids,
    read_all,
    stage_host_image,
    wait_for_count,
    wait_ready,
)
from kube_pods import KubePlay, local_objects, set_arg, workload

pytestmark = [
    pytest.mark.containers,
    pytest.mark.usefixtures("bootstrap_servers", "schema_registry_url"),
]

FIRST = 100


def grace_of(workload: dict) -> int:
    return workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


class Pipeline:
    """The example pipeline's pods, played together as `kubectl apply -k` would apply them."""

    def __init__(self, variant: str, label: str):
        self.objects = local_objects(variant, stage_host_image())
        self.topics = Topics.new(label)
        self.kube = KubePlay(self.topics, self.objects)
        self.pods = {
            name: self.kube.pod_names(name) for name in ("stage-one", "stage-two", "stage-three")
        }

    def start(self) -> None:
        self.kube.play_all()
        for pods in self.pods.values():
            for pod in pods:
                wait_ready(self.kube.container(pod))

    def stop(self, name: str, pods: list[str] | None = None) -> None:
        """Deletes the workload's pods; each must drain and exit 0."""
        grace = grace_of(workload(self.objects, name))
        for pod in pods or self.pods[name]:
            code = self.kube.stop(pod, grace)
            assert code == 0, f"{pod} did not drain cleanly (exit {code}):\n{self.kube.logs(pod)}"

    def run_source_until_first_records_arrive(self) -> list[dict]:
        """Waits for FIRST records at stage three, then deletes the source's pod; returns what
        the source produced."""
        wait_for_count(self.topics.three, FIRST)
        self.stop("stage-one")
        produced = read_all(self.topics.one)
        ids = postids(produced)
        assert len(ids) >= FIRST and set(ids) == {f"postid_{i}" for i in range(len(ids))}, (
            f"the source produced {len(ids)} records, not postid_0..: {sorted(ids)[:5]}..."
        )
        return produced

    def drain_and_check(self, produced: list[dict], exactly_once: bool) -> list[dict]:
        """Every produced record reaches stage three; then stages two and three drain, and
        their groups have committed all of their input."""
        expected = set(postids(produced))
        wait_for_count(self.topics.three, len(expected))
        out = read_all(self.topics.three)
        assert missing(expected, out) == [], "records lost between stage one and stage three"
        assert set(postids(out)) == expected
        assert all(r["value"]["ppm"] == 200.0 for r in out)
        if exactly_once:
            assert len(out) == len(expected), (
                f"{len(out) - len(expected)} duplicates at stage three under exactly-once"
            )
        print(
            f"{self.topics.run}: the source produced {len(expected)} records, stage three wrote "
            f"{len(out)} ({len(out) - len(expected)} written twice)"
        )
        self.stop("stage-two")
        self.stop("stage-three")
        # Each group committed its whole input: the offset after the last record, or after
        # the last transaction's commit marker.
        for topic, group in (
            (self.topics.one, self.topics.group_two),
            (self.topics.two, self.topics.group_three),
        ):
            assert committed(topic, group) == end_offsets(topic), f"{group} on {topic}"
        return out

    def remove(self) -> None:
        self.kube.remove_all()


@pytest.fixture
def pipeline(request):
    pipelines = []

    def make(variant: str) -> Pipeline:
        made = Pipeline(variant, request.node.name.removeprefix("test_")[:20].replace("_", "-"))
        pipelines.append(made)
        return made

    yield make
    for made in pipelines:
        made.remove()


def test_the_at_least_once_manifests_deliver_every_record(pipeline):
    run = pipeline("at-least-once")
    run.start()
    produced = run.run_source_until_first_records_arrive()
    run.drain_and_check(produced, exactly_once=False)


def test_the_exactly_once_statefulsets_deliver_every_record_once(pipeline):
    run = pipeline("exactly-once")
    run.start()
    # The StatefulSets' pods run with stable, unique transactional ids made from their own
    # names (example.$(POD_NAME), expanded as the kubelet does: see kube_pods.expand_env).
    for name in ("stage-two", "stage-three"):
        for pod in run.pods[name]:
            env = podman(
                "inspect",
                "--format",
                "{{range .Config.Env}}{{println .}}{{end}}",
                run.kube.container(pod),
            )
            assert (
                f"STAGE_HOST_TRANSACTIONAL_ID=example.{run.topics.run}-{pod}" in env.stdout.split()
            )
    produced = run.run_source_until_first_records_arrive()
    run.drain_and_check(produced, exactly_once=True)


def build_second_version(image: str) -> str:
    """A new version of the image whose stage two plugin is a new file, as a new plugin
    version is shipped: the same library under a new name (a running process's library is
    never overwritten)."""
    tag = f"{image}-v2"
    containerfile = (
        f"FROM {image}\n"
        "USER 0\n"
        "RUN cp /opt/stage-host/plugins/libstage_two.so /opt/stage-host/plugins/libstage_two-v2.so\n"
        "USER 10001\n"
    )
    done = subprocess.run(
        ["podman", "build", "--pull=never", "--network", "host", "--tag", tag, "-f", "-", "."],
        input=containerfile,
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert done.returncode == 0, f"podman build of {tag}: {done.stderr.strip()}"
    return tag


def wait_for_more(topic: str, ends: dict[int, int], more: int) -> None:
    """Waits until `topic` has `more` records past `ends`."""
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    while sum(end_offsets(topic).values()) < sum(ends.values()) + more:
        assert time.monotonic() < deadline, f"{topic} did not grow by {more} records past {ends}"
        time.sleep(1)


def test_a_rolling_update_of_stage_two_to_a_new_plugin_loses_nothing(pipeline):
    run = pipeline("at-least-once")
    run.start()
    wait_for_count(run.topics.three, 20)  # the old version is serving

    # The new template: a new image with a new plugin file and a new config, as a new tag in
    # the kustomization's images and new args would roll out.
    deployment = workload(run.objects, "stage-two")
    new_template = copy.deepcopy(deployment["spec"]["template"])
    container = new_template["spec"]["containers"][0]
    container["image"] = build_second_version(stage_host_image())
    set_arg(container["args"], "--plugin", "/opt/stage-host/plugins/libstage_two-v2.so")
    set_arg(container["args"], "--config-json", '{"ppm": 150.0}')

    # What the Deployment controller does with maxSurge 1, maxUnavailable 0 and
    # minReadySeconds: one new pod; once it is ready and stayed ready for minReadySeconds, one
    # old pod is deleted (it drains); and again until no old pod is left.
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert (strategy["maxSurge"], strategy["maxUnavailable"]) == (1, 0)
    min_ready = deployment["spec"]["minReadySeconds"]
    old_pods, new_pods = run.pods["stage-two"], []
    for i, old in enumerate(old_pods):
        new_pods.append(f"stage-two-r2-{i}")
        address = wait_ready(run.kube.play_pod(new_template, new_pods[-1]))
        time.sleep(min_ready)
        assert is_ready(address), f"{new_pods[-1]} did not stay ready for minReadySeconds"
        run.stop("stage-two", [old])
    run.pods["stage-two"] = new_pods
    # Every old pod has drained: whatever stage two writes from here on, the new version wrote.
    rolled_out_at = end_offsets(run.topics.two)
    wait_for_more(run.topics.two, rolled_out_at, 50)

    produced = run.run_source_until_first_records_arrive()
    run.drain_and_check(produced, exactly_once=False)
    scored = read_all(run.topics.two)
    before = [r for r in scored if r["offset"] < rolled_out_at[r["partition"]]]
    after = [r for r in scored if r["offset"] >= rolled_out_at[r["partition"]]]
    print(f"stage two's outputs: {len(before)} before the rollout ended, {len(after)} after")
    assert any(r["value"]["ppm"] == 100.0 for r in before), "the old version served before"
    assert after and all(r["value"]["ppm"] == 150.0 for r in after), (
        "after the rollout, only the new version writes"
    )
