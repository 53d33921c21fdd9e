"""Node mode only: what a Pod's life depends on, on a real kubelet with the chart's Pods serving
the webhook (E2E_WEBHOOK=node; skipped elsewhere, saying why). Native sidecar start order and
Jobs, the kubelet's volume updates reaching every replica, the chart's resources under the
largest Pods the apiserver takes, and Pod creations while the webhook's replicas are restarted,
deleted, evicted and killed. Each measured figure goes to the run's summary."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.chart import NAMESPACE
from e2e.cluster import Cluster, ClusterConfig
from e2e.metrics import Samples, labels
from e2e.node import (
    ApiProxy,
    Stream,
    api_proxy,
    cgroup_memory,
    container_id,
    figure,
    host_pids,
    kill_outright,
    sync_frequency,
    timestamp,
    wait_for_replicas,
)
from e2e.pods import APPS, INJECT, STATUS, Obj, bare
from e2e.target import Target
from e2e.tools import COMMAND
from e2e.webhooks import NodeWebhook, image_values
from tests.chart.helm import webhook_object

SIDECAR = "e2e-ready-sidecar"
"""e2e/values.yaml's template: ready 2 s after it starts."""
SIDECAR_READY_AFTER = 2.0
READY_FILE = "/var/run/e2e-sidecar/ready"
APP_CHECK = f"if test -f {READY_FILE}; then echo sidecar-ready; else echo sidecar-not-ready; fi"
POD_TIMEOUT = 90.0
CLASSIC_OBSERVED = 15.0
"""How long the classic Job is watched after its app container exited."""
RELOAD_TIMEOUT = 150.0
"""The kubelet's default sync (1 min) plus its cache TTL and the service's own 2 s poll."""
REPLICAS_TIMEOUT = 180.0
SETTLE = 8.0
"""Creations go on this long after the replicas are back: the shutdown delay (5 s) of the
replicas that stopped, and the endpoint batching (3 s) behind it."""
BURST = 48
POD_BYTES = 1_400_000
"""About the largest Pod etcd stores (its request limit is 1.5 MiB)."""


@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest) -> NodeWebhook:
    """The chart's Pods serving the webhook on a real node; skipped outside node mode."""
    config = ClusterConfig.from_env()
    if config is None or config.webhook != "node":
        pytest.skip(
            "node mode is off: set E2E_KUBECONFIG, E2E_WEBHOOK=node and E2E_IMAGE on a cluster "
            "with a Ready node (see e2e/README.md)"
        )
    target: Target = request.getfixturevalue("cluster_target")
    assert isinstance(target.webhook, NodeWebhook)
    cluster: Cluster = request.getfixturevalue("cluster")
    cluster.free_node()
    return target.webhook


@pytest.fixture(scope="module")
def kube(node: NodeWebhook, request: pytest.FixtureRequest) -> Cluster:
    found: Cluster = request.getfixturevalue("cluster")
    return found


@pytest.fixture(scope="module")
def proxy(node: NodeWebhook) -> Iterator[ApiProxy]:
    with api_proxy(node.kubectl) as found:
        yield found


def app_pod(name: str, command: str, inject: str = SIDECAR) -> Obj:
    """A busybox app that runs `command` once; its Pod asks for `inject`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {INJECT: inject}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {"name": "app", "image": "busybox:1.36.1", "command": ["sh", "-c", command]}
            ],
        },
    }


def job(name: str, pod: Obj) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": APPS},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": pod["metadata"] | {"name": None}, "spec": pod["spec"]},
        },
    }


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)


def statuses(pod: Obj) -> dict[str, Obj]:
    found = pod["status"].get("initContainerStatuses", []) + pod["status"]["containerStatuses"]
    return {c["name"]: c for c in found}


def started_at(status: Obj) -> float:
    state = status["state"].get("running") or status["state"]["terminated"]
    return timestamp(state["startedAt"])


def test_the_native_sidecar_is_ready_before_the_app_starts(kube: Cluster) -> None:
    """The kubelet starts the app only once the injected sidecar's startupProbe passed: the
    app sees the file that makes the sidecar ready, and starts at least 2 s after it."""
    kubectl = kube.kubectl
    pod = app_pod("node-order", APP_CHECK)
    kubectl.run("create", f"--namespace={APPS}", "--filename=-", input=json.dumps(pod))
    try:
        done = wait_for(
            lambda: (
                (p := kubectl.get("pod", "node-order", f"--namespace={APPS}"))["status"].get(
                    "phase"
                )
                in ("Succeeded", "Failed")
                and p
            ),
            POD_TIMEOUT,
            "the Pod",
        )
        assert done["status"]["phase"] == "Succeeded", done["status"]
        found = statuses(done)
        assert done["spec"]["initContainers"][0]["restartPolicy"] == "Always"
        lead = started_at(found["app"]) - started_at(found["e2e-sidecar"])
        logs = kubectl.run("logs", "node-order", "--container=app", f"--namespace={APPS}")
        assert logs.stdout.strip() == "sidecar-ready"
        assert lead >= SIDECAR_READY_AFTER, found
        sidecar_end = timestamp(found["e2e-sidecar"]["state"]["terminated"]["finishedAt"])
        app_end = timestamp(found["app"]["state"]["terminated"]["finishedAt"])
        assert sidecar_end >= app_end, "the sidecar stopped before the app"
        figure(
            f"native sidecar start order: the app started {lead:.0f} s after the sidecar "
            f"(ready after {SIDECAR_READY_AFTER:.0f} s; the app saw its ready file); the "
            "sidecar stopped after the app, the Pod Succeeded"
        )
    finally:
        kubectl.run("delete", "pod", "node-order", f"--namespace={APPS}", "--wait=false")


def test_a_job_with_a_native_sidecar_completes(kube: Cluster) -> None:
    kubectl = kube.kubectl
    created = time.monotonic()
    kubectl.apply(job("node-job-native", app_pod("x", APP_CHECK)))
    try:
        wait = ["wait", "--for=condition=complete", "job/node-job-native", f"--namespace={APPS}"]
        kubectl.run(*wait, f"--timeout={POD_TIMEOUT:.0f}s", timeout=POD_TIMEOUT + 30)
        took = time.monotonic() - created
        stored = kubectl.get("job", "node-job-native", f"--namespace={APPS}")
        assert stored["status"]["succeeded"] == 1
        figure(f"Job with the native sidecar: Complete {took:.1f} s after its creation")
    finally:
        kubectl.run("delete", "job", "node-job-native", f"--namespace={APPS}",
                    "--cascade=background", "--wait=false")  # fmt: skip


def test_the_same_job_with_a_classic_sidecar_never_completes(kube: Cluster, tmp_path: Path) -> None:
    """What the classic placement does to the same Job, observed: the app exits, the sidecar
    (a regular container) keeps running, so the Pod stays Running and the Job active."""
    kubectl = kube.kubectl
    directory = kube.release.templates_dir(tmp_path / "templates")
    manifest = yaml.safe_dump(job("node-job-classic", app_pod("x", APP_CHECK)))
    injected = subprocess.run(
        [COMMAND, "inject", "-f", "-", "--templates-dir", str(directory),
         "--native-sidecars=false"],
        input=manifest, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    classic = yaml.safe_load(injected)
    spec = classic["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["app", "e2e-sidecar"]
    kubectl.apply(classic)
    selector = "--selector=job-name=node-job-classic"
    try:

        def app_exited() -> Obj | None:
            pods = kubectl.get("pods", f"--namespace={APPS}", selector)["items"]
            for pod in pods:
                app = statuses(pod).get("app") if "containerStatuses" in pod["status"] else None
                if app and "terminated" in app["state"]:
                    found: Obj = pod
                    return found
            return None

        wait_for(app_exited, POD_TIMEOUT, "the classic Job's app container")
        time.sleep(CLASSIC_OBSERVED)
        pod = app_exited()
        assert pod is not None
        stored = kubectl.get("job", "node-job-classic", f"--namespace={APPS}")
        conditions = [c["type"] for c in stored["status"].get("conditions", [])]
        sidecar = statuses(pod)["e2e-sidecar"]
        assert "Complete" not in conditions and stored["status"].get("active") == 1
        assert pod["status"]["phase"] == "Running" and "running" in sidecar["state"]
        app_code = statuses(pod)["app"]["state"]["terminated"]["exitCode"]
        figure(
            f"Job with the classic sidecar: the app exited {app_code}, "
            f"{CLASSIC_OBSERVED:.0f} s later the Job is still active (no Complete), its Pod "
            "Running with the sidecar running: it never completes on its own"
        )
    finally:
        kubectl.run("delete", "job", "node-job-classic", f"--namespace={APPS}",
                    "--cascade=background", "--wait=false")  # fmt: skip


def log_shipper_digests(node: NodeWebhook) -> dict[str, str]:
    """Each ready replica's log-shipper digest from its own /debug/templates."""
    found = {}
    for pod in node.ready_pods():
        debug = json.loads(node.ops(pod, "/debug/templates"))
        [digest] = [t["digest"] for t in debug["templates"] if t["name"] == "log-shipper"]
        found[pod] = digest
    return found


def until_each_replica(node: NodeWebhook, changed: Callable[[str], bool]) -> dict[str, float]:
    """Seconds until `changed(pod)` holds for each ready replica, polled about every 0.3 s."""
    started = time.monotonic()
    took: dict[str, float] = {}
    pods = node.ready_pods()
    while len(took) < len(pods):
        for pod in pods:
            if pod not in took and changed(pod):
                took[pod] = time.monotonic() - started
        assert time.monotonic() - started < RELOAD_TIMEOUT, f"only {took} of {pods}"
        time.sleep(0.3)
    return took


def tls_reloads(node: NodeWebhook, pod: str) -> float:
    samples = Samples.parse(node.ops(pod, "/metrics"))
    return samples.get("sidecar_injector_tls_reloads_total", **dict(labels(result="success")))


def test_a_configmap_edit_and_a_renewal_reach_every_replica_through_the_kubelet(
    kube: Cluster, node: NodeWebhook
) -> None:
    """The kubelet's ConfigMap and Secret volume updates, timed per replica at this node's sync
    frequency; real clusters keep the kubelet's default of 1 minute."""
    [name] = [n["metadata"]["name"] for n in kube.ready_nodes()][:1]
    sync = sync_frequency(kube.kubectl, name)
    original = node.templates()
    before = log_shipper_digests(node)
    edited = dict(original)
    edited["log-shipper.yaml"] = original["log-shipper.yaml"].replace(
        "fluent/fluent-bit:3.1.4", "fluent/fluent-bit:3.2.0"
    )
    assert edited != original
    node.edit_templates(edited)
    try:
        edit = until_each_replica(
            node, lambda pod: log_shipper_digests(node).get(pod) not in (None, before.get(pod))
        )
    finally:
        node.edit_templates(original)
        until_each_replica(node, lambda pod: log_shipper_digests(node).get(pod) == before[pod])
    reloads = {pod: tls_reloads(node, pod) for pod in node.ready_pods()}
    issued = node.write_secret()
    renewal = until_each_replica(node, lambda pod: tls_reloads(node, pod) > reloads[pod])
    for pod in node.ready_pods():
        expiry = Samples.parse(node.ops(pod, "/metrics")).get(
            "sidecar_injector_tls_certificate_expiry_timestamp_seconds"
        )
        assert expiry == issued.not_after, "a replica serves another certificate"
    figure(
        f"kubelet volume updates at syncFrequency {sync}: ConfigMap edit served by each replica "
        f"after {', '.join(f'{t:.1f}' for t in sorted(edit.values()))} s; certificate renewal "
        f"after {', '.join(f'{t:.1f}' for t in sorted(renewal.values()))} s (kubelet default "
        "1m: up to ~1-1.5 min)"
    )


def big_pod(index: int) -> Obj:
    """An opted-in Pod of about POD_BYTES: its app container's env carries the bulk (no
    field has a size limit of its own below the object's)."""
    pod = bare(f"node-burst-{index}")
    chunk = "x" * 10_000
    pod["spec"]["containers"][0]["env"] = [
        {"name": f"E2E_BULK_{i}", "value": chunk} for i in range(POD_BYTES // 10_050)
    ]
    return pod


def test_the_chart_resources_hold_under_a_burst_of_the_largest_pods(
    node: NodeWebhook, proxy: ApiProxy
) -> None:
    """BURST Pods of about 1.4 MB at once, twice: every one answered (injected), no replica
    restarted or OOM-killed under the chart's default memory limit; the peak is the kernel's."""
    pods = [big_pod(i) for i in range(BURST)]
    size = len(json.dumps(pods[0]))
    assert 0.95 * POD_BYTES <= size <= POD_BYTES + 20_000, size
    started = time.monotonic()
    with ThreadPoolExecutor(BURST) as pool:
        for _ in range(2):
            results = list(pool.map(lambda pod: proxy.create_pod(pod, APPS), pods))
            refused = [
                f"{status}: {body.get('message')}"
                for status, body in results
                if status != 201
                or "log-shipper" not in [c["name"] for c in body["spec"]["containers"]]
            ]
            assert not refused, refused[:3]
    took = time.monotonic() - started
    peaks = []
    for pod in node.all_pods():
        [status] = pod["status"]["containerStatuses"]
        # lastState is empty ({}) until a container restarts (an OOM kill: reason OOMKilled).
        assert status["restartCount"] == 0 and not status.get("lastState"), status
        memory = cgroup_memory(node.kubectl, pod["metadata"]["name"], status["name"])
        peaks.append(memory["peak"])
        assert memory["peak"] < memory["limit"]
    limit = memory["limit"]
    figure(
        f"burst: 2 x {BURST} Pods of {size / 1e6:.2f} MB at once, all answered in {took:.1f} s; "
        f"no restart, no OOM kill; peak memory per replica "
        f"{', '.join(f'{p / 2**20:.0f}' for p in peaks)} MiB of the {limit / 2**20:.0f} MiB limit"
    )


def pulled(kube: Cluster, node: NodeWebhook, image: str) -> str:
    """Every webhook replica runs `image` as the kubelet pulled it from the registry
    (imagePullPolicy IfNotPresent): its imageID is the digest the registry holds for it. What
    the kubelet said about the pull, for the figure."""
    digest = kube.registry_digest(image)
    assert digest, f"{image} is not in the registry"
    said = set()
    for pod in node.all_pods():
        [container] = pod["spec"]["containers"]
        [status] = pod["status"]["containerStatuses"]
        assert (container["image"], container["imagePullPolicy"]) == (image, "IfNotPresent")
        assert status["imageID"].endswith(f"@{digest}"), (status["imageID"], digest)
        name = pod["metadata"]["name"]
        events = node.kubectl.get(
            "events", f"--namespace={NAMESPACE}",
            f"--field-selector=involvedObject.name={name},reason=Pulled",
        )  # fmt: skip
        said |= {
            re.sub(r'\s*"[^"]*"|\s+in [0-9.]+m?s.*$', "", e["message"]) for e in events["items"]
        }
    return (
        f"{image}: {len(node.all_pods())} replicas, imageID {status['imageID']} == the "
        f"registry's digest; the kubelet: {'; '.join(sorted(said)) or 'no Pulled event kept'}"
    )


def test_the_webhook_runs_the_image_the_kubelet_pulled_from_the_registry(
    kube: Cluster, node: NodeWebhook
) -> None:
    image = kube.deployed_image()
    if not kube.from_registry(image):
        pytest.skip(
            "the webhook's image is not from a registry the suite knows: set E2E_CHART=oci://... "
            "(and E2E_REGISTRY_CA) to install a release"
        )
    wait_for_replicas(node, 2, REPLICAS_TIMEOUT)
    figure(f"pulled from the registry: {pulled(kube, node, image)}")


def upgrade_to_the_next_release(kube: Cluster, node: NodeWebhook) -> str:
    """`helm upgrade` to E2E_UPGRADE_VERSION (its image: E2E_UPGRADE_IMAGE, or the new chart's
    default), then back to the installed release, each waited for."""
    config = kube.config
    if not (config.chart and config.upgrade_version and config.chart_version):
        pytest.skip(
            "no second release: set E2E_UPGRADE_VERSION with E2E_CHART=oci://... and "
            "E2E_CHART_VERSION (the release to go back to)"
        )
    before = kube.deployed_image()
    after = kube.deployed_image(config.upgrade_version, config.upgrade_image)
    assert after != before, "the next release must run another image"
    override = None
    if config.image or config.upgrade_image:  # the installed values pin an image
        override = image_values(after)
        override["image"].setdefault("digest", "")
    upgraded = kube.upgrade(wait=True, version=config.upgrade_version, values=override)
    assert upgraded.returncode == 0, upgraded.stderr
    wait_for_replicas(node, 2, REPLICAS_TIMEOUT)
    figure(f"upgraded, pulled from the registry: {pulled(kube, node, after)}")
    back = kube.upgrade(wait=True)
    assert back.returncode == 0, back.stderr
    wait_for_replicas(node, 2, REPLICAS_TIMEOUT)
    assert {p["spec"]["containers"][0]["image"] for p in node.all_pods()} == {before}
    version = config.chart_version or "the installed version"
    return f"helm upgrade to {config.upgrade_version} ({after}), then back to {version} ({before})"


def evict(proxy: ApiProxy, pod: str) -> int:
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": NAMESPACE},
    }
    status, _ = proxy.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction", body)
    return status


def disrupt(kind: str, kube: Cluster, node: NodeWebhook, proxy: ApiProxy) -> str:
    """One disruption of the webhook's replicas; what happened, for the figure."""
    kubectl = node.kubectl
    pods = node.ready_pods()
    if kind == "rollout-restart":
        name = webhook_object(kube.release.docs, "Deployment")["metadata"]["name"]
        kubectl.run("rollout", "restart", f"deployment/{name}", f"--namespace={NAMESPACE}")
        timeout = f"--timeout={REPLICAS_TIMEOUT:.0f}s"
        status = ["rollout", "status", f"deployment/{name}", f"--namespace={NAMESPACE}", timeout]
        kubectl.run(*status, timeout=REPLICAS_TIMEOUT + 30)
        return "kubectl rollout restart"
    if kind == "delete-one":
        kubectl.run("delete", "pod", pods[0], f"--namespace={NAMESPACE}", "--wait=false")
        return f"kubectl delete pod {pods[0]}"
    if kind == "evict-both":
        with ThreadPoolExecutor(2) as pool:
            first = list(pool.map(lambda pod: evict(proxy, pod), pods))
        assert sorted(first) == [201, 429], first
        [refused] = [pod for pod, status in zip(pods, first, strict=True) if status == 429]
        # As `kubectl drain` does: retry the one the PodDisruptionBudget held back.
        wait_for(lambda: evict(proxy, refused) == 201, REPLICAS_TIMEOUT, "the second eviction", 2)
        return "both evicted at once: 201 and 429 (PDB), the second retried until let go"
    if kind == "helm-upgrade":
        return upgrade_to_the_next_release(kube, node)
    assert kind == "kill-one"
    [pod] = [p for p in node.all_pods() if p["metadata"]["name"] == pods[0]]
    pids = host_pids(container_id(pod, "sidecar-injector"))
    if not pids:
        pytest.skip("the webhook's process is not on this machine (or not visible): no kill")
    kill_outright(pids)
    return f"SIGKILL of {pods[0]}'s process from the node"


DISRUPTIONS = ["rollout-restart", "delete-one", "evict-both", "kill-one", "helm-upgrade"]


@pytest.mark.parametrize("kind", DISRUPTIONS)
def test_pod_creations_while_the_webhook_replicas_are_disrupted(
    kind: str, kube: Cluster, node: NodeWebhook, proxy: ApiProxy
) -> None:
    """A steady stream of opted-in Pod creations (failurePolicy Fail) before, during and after
    a disruption of the replicas, with endpoint changes reaching the apiserver seconds late:
    none refused, except what a process killed outright costs (counted, not hidden)."""
    wait_for_replicas(node, 2, REPLICAS_TIMEOUT)
    stream = Stream(proxy, bare("node-stream"), APPS)
    started = time.monotonic()
    with stream:
        time.sleep(2)
        what = disrupt(kind, kube, node, proxy)
        wait_for_replicas(node, 2, REPLICAS_TIMEOUT)
        time.sleep(SETTLE)
    took = time.monotonic() - started
    figure(
        f"availability, {kind} ({what}): {stream.sent} creations in {took:.0f} s, "
        f"{len(stream.refused)} refused"
        + (f" (first: {stream.refused[0]})" if stream.refused else "")
    )
    assert stream.answered > 0
    if kind == "kill-one":
        # The kill happened: the kubelet restarted that container.
        restarts = [p["status"]["containerStatuses"][0]["restartCount"] for p in node.all_pods()]
        assert max(restarts) >= 1, restarts
    else:
        assert not stream.refused, stream.refused[:3]


def test_a_replica_started_during_a_broken_edit_serves_the_last_good_version(
    kube: Cluster, node: NodeWebhook, cluster_target: Target
) -> None:
    """A broken log-shipper edit let through (its validating entry removed, as while the
    webhook is down), then `kubectl rollout restart`: the new replicas never loaded a good
    log-shipper, yet serve the version the audit kept in the last-good ConfigMap, and pods
    asking for it are injected with it instead of denied."""
    [last_good] = [
        d["metadata"]["name"]
        for d in kube.release.docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-last-good")
    ]
    kubectl = node.kubectl
    original = node.templates()

    def kept() -> str | None:
        found = kubectl.get("configmap", last_good, f"--namespace={NAMESPACE}")
        text: str | None = (found.get("data") or {}).get("log-shipper.yaml")
        return text

    wait_for(lambda: kept() == original["log-shipper.yaml"], POD_TIMEOUT, "the audit's write")
    before = set(log_shipper_digests(node).values())
    assert len(before) == 1
    name = webhook_object(kube.release.docs, "Deployment")["metadata"]["name"]
    timeout = f"--timeout={REPLICAS_TIMEOUT:.0f}s"
    try:
        with kube.unvalidated("templates"):
            node.edit_templates({**original, "log-shipper.yaml": "containers: 3\n"})
        kubectl.run("rollout", "restart", f"deployment/{name}", f"--namespace={NAMESPACE}")
        kubectl.run("rollout", "status", f"deployment/{name}", f"--namespace={NAMESPACE}",
                    timeout, timeout=REPLICAS_TIMEOUT + 30)  # fmt: skip
        replicas = node.ready_pods()
        for pod in replicas:
            shown = json.loads(node.ops(pod, "/debug/templates"))
            [served] = [t for t in shown["templates"] if t["name"] == "log-shipper"]
            assert (served["stale"], served["lastGood"]) == (True, True), pod
            assert {served["digest"]} == before
            assert "log-shipper" in shown["errors"]
            metrics = Samples.parse(node.ops(pod, "/metrics"))
            assert metrics.get("sidecar_injector_templates_last_good") == 1
        admitted = cluster_target.apiserver.admit(bare("last-good-probe"), APPS, dry_run=True)
        assert admitted.allowed and admitted.pod is not None, admitted
        status = json.loads(admitted.pod["metadata"]["annotations"][STATUS])
        assert {t["digest"] for t in status["templates"] if t["name"] == "log-shipper"} == before
        assert kept() == original["log-shipper.yaml"], "the broken edit never reached it"
        figure(
            f"broken log-shipper edit + rollout restart: {len(replicas)} new replicas serve its "
            f"last good version {before.pop()} from ConfigMap {last_good}; pods injected, none "
            "denied"
        )
    finally:
        node.edit_templates(original)
        until_each_replica(
            node,
            lambda pod: (
                not any(
                    t["stale"] for t in json.loads(node.ops(pod, "/debug/templates"))["templates"]
                )
            ),
        )
