"""The fleet audit on a real cluster, as an operator lives it: the audit runs next to the webhook
(the chart's audit pod where the webhook runs as the chart's pods; elsewhere the real process on
this machine with the chart's own audit args, reading the templates the local webhook reads),
its `sidecar_injector_audit_pods` gauges and `sidecar-injector outdated` follow a Deployment's
pods through:

1. the webhook scaled to 0 (stopped, for a local webhook) under `failurePolicy: Ignore` (the
   chart value, set with `helm upgrade`): the pods are created without their sidecar, `missed`
   within 30 s, and `outdated` names them with the restart command and exits 1 with
   --exit-code;
2. a template edit: `outdated` says to wait while a replica still serves the old version (read
   through the API server's pods proxy), then lists the pods as outdated, as the audit counts
   them once the kubelet delivered the edit to its volume;
3. the template restricted away from the pods' namespace (`namespaces:`): `blocked`, with the
   webhook's reason, and no restart offered before the reason is fixed;
4. after `kubectl rollout restart`: every pod current, and the gauges of the other states back
   to 0.

Cluster mode with a controller-manager (the Deployment's pods are the ReplicaSet controller's).
What `test_audit.py` and `test_operator.py` already show (a namespace labeled after its pods,
an owner of every kind, the malformed status annotation) is not repeated here."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from e2e.chart import NAMESPACE
from e2e.cluster import Cluster
from e2e.expect import digests
from e2e.kubectl import is_ready
from e2e.local import LocalInjector
from e2e.node import figure
from e2e.pods import NAMESPACE_LABELS, STATUS, Obj, deployment
from e2e.target import Target
from e2e.test_audit import Audit, audit
from e2e.test_operator import Operator
from e2e.webhooks import KUBELET_SYNC_BOUND, InClusterWebhook
from tests.chart.helm import component, webhook_object

TEMPLATE = "log-shipper"
SHIPPER = f"{TEMPLATE}.yaml"
DEADLINE = 30.0
"""The issue's bound: pods created without their sidecar show as missed within 30 s."""
POD_TIMEOUT = 120.0
Series = dict[tuple[str, str], float]
"""(template, state) -> pods, the non-zero series of one namespace."""


# --- the audit's gauges, wherever it runs ---


@dataclass
class ChartAudit:
    """The chart's audit pod, read through the API server's pods proxy."""

    cluster: Cluster

    def metrics(self) -> str:
        kubectl = self.cluster.kubectl
        pods = kubectl.get(
            "pods", f"--namespace={NAMESPACE}", "--selector=app.kubernetes.io/component=audit"
        )["items"]
        ready = [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]
        assert len(ready) == 1, f"one ready audit pod expected: {[p['metadata'] for p in pods]}"
        [port] = ready[0]["spec"]["containers"][0]["ports"]
        name = ready[0]["metadata"]["name"]
        path = f"/api/v1/namespaces/{NAMESPACE}/pods/{name}:{port['containerPort']}/proxy/metrics"
        return str(kubectl.raw(path))


@dataclass
class LocalAudit:
    """The real process on this machine."""

    process: Audit

    def metrics(self) -> str:
        return self.process.get("/metrics").text


class Gauges:
    def __init__(self, source: ChartAudit | LocalAudit) -> None:
        self.source = source

    def of(self, namespace: str) -> Series:
        families = text_string_to_metric_families(self.source.metrics())
        return {
            (s.labels["template"], s.labels["state"]): s.value
            for family in families
            if family.name == "sidecar_injector_audit_pods"
            for s in family.samples
            if s.labels["namespace"] == namespace and s.value
        }

    def zeros(self, namespace: str) -> set[tuple[str, str]]:
        """The namespace's series that are exported at 0."""
        families = text_string_to_metric_families(self.source.metrics())
        return {
            (s.labels["template"], s.labels["state"])
            for family in families
            if family.name == "sidecar_injector_audit_pods"
            for s in family.samples
            if s.labels["namespace"] == namespace and not s.value
        }

    def until(self, namespace: str, wanted: Series, bound: float) -> float:
        """Seconds until the namespace's non-zero series are exactly `wanted`."""
        started = time.monotonic()
        while (found := self.of(namespace)) != wanted:
            assert time.monotonic() - started < bound, f"{namespace}: {found}, not {wanted}"
            time.sleep(0.5)
        return time.monotonic() - started


# --- fixtures ---


@dataclass
class Fleet:
    cluster: Cluster
    target: Target
    operator: Operator
    gauges: Gauges
    namespace: str

    @property
    def kubectl(self) -> Any:
        return self.cluster.kubectl

    @property
    def local(self) -> bool:
        return isinstance(self.target.webhook, LocalInjector)

    def outdated(self, *args: str) -> tuple[int, dict[str, Any]]:
        code, found = self.operator.json("outdated", "-n", self.namespace, "--exit-code", *args)
        return code, found

    def web(self, replicas: int = 2) -> None:
        """A Deployment asking for TEMPLATE; its app exits at once on SIGTERM, and every pod
        may be replaced at once (rollouts finish where pods never become ready)."""
        found = deployment("web", TEMPLATE, replicas=replicas)
        found["metadata"]["namespace"] = self.namespace
        spec = found["spec"]
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}}
        spec["template"]["spec"]["terminationGracePeriodSeconds"] = 1
        spec["template"]["spec"]["containers"] = [
            {"name": "app", "image": "busybox:1.36.1", "command": ["sleep", "3600"]}
        ]
        self.kubectl.apply(found)

    def pods(self) -> list[Obj]:
        """The Deployment's pods, those being deleted left out."""
        items: list[Obj] = self.kubectl.get(
            "pods", f"--namespace={self.namespace}", "--selector=app.kubernetes.io/name=web"
        )["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def wait_pods(self, count: int, injected: bool) -> list[Obj]:
        """Until the Deployment has exactly `count` pods, all with (or all without) the
        webhook's status annotation."""
        deadline = time.monotonic() + POD_TIMEOUT
        while True:
            found = self.pods()
            marked = [STATUS in (p["metadata"].get("annotations") or {}) for p in found]
            if len(found) == count and all(m == injected for m in marked):
                return found
            assert time.monotonic() < deadline, f"pods: {len(found)}, injected: {marked}"
            time.sleep(0.5)

    def restart(self) -> None:
        """`kubectl rollout restart`, then until its new pods, injected, replaced the old."""
        before = {p["metadata"]["name"] for p in self.pods()}
        self.kubectl.run("rollout", "restart", "deployment/web", f"--namespace={self.namespace}")
        deadline = time.monotonic() + POD_TIMEOUT
        while True:
            found = self.wait_pods(len(before), injected=True)
            if not before & {p["metadata"]["name"] for p in found}:
                return
            assert time.monotonic() < deadline, "the restart never replaced the pods"
            time.sleep(0.5)

    def all_current(self, count: int) -> None:
        """Step 4: the pods current in the gauges (the other states at 0, still exported),
        and `outdated` finds nothing."""
        self.gauges.until(self.namespace, {(TEMPLATE, "current"): float(count)}, POD_TIMEOUT)
        code, found = self.outdated()
        assert (code, found["workloads"]) == (0, []), found
        assert found["states"]["current"] == count

    def edit(self, change: Callable[[str], str]) -> dict[str, str]:
        """Change TEMPLATE's file in the templates ConfigMap (and, for a local webhook, its
        volume: the kubelet's part); the data before, to put back."""
        data = self.target.webhook.templates()
        edited = {**data, SHIPPER: change(data[SHIPPER])}
        applied = self.target.apiserver.update_templates(edited)
        assert applied.allowed, applied.message
        self.target.webhook.edit_templates(edited)
        return data

    def put_back(self, data: dict[str, str], digest: str) -> None:
        """The templates as they were, and until every replica serves TEMPLATE at `digest`
        again: pods created before would get the edited version, which `outdated` (reading
        the ConfigMap) would rightly call outdated."""
        assert self.target.apiserver.update_templates(data).allowed
        self.target.webhook.edit_templates(data)
        self.served(digest)

    def served(self, digest: str) -> None:
        """Until every replica of the webhook serves TEMPLATE at `digest`."""
        deadline = time.monotonic() + KUBELET_SYNC_BOUND
        while {d.get(TEMPLATE) for d in self.replica_digests()} != {digest}:
            assert time.monotonic() < deadline, self.replica_digests()
            time.sleep(1)

    def replica_digests(self) -> list[dict[str, str]]:
        return [digests([debug]) for debug in self.target.webhook.debug_templates()]


@pytest.fixture(scope="module")
def gauges(
    cluster: Cluster, cluster_target: Target, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gauges]:
    """The chart's audit pod where the webhook runs as the chart's pods; else the process on
    this machine with the chart's audit args, reading the local webhook's templates volume."""
    if not cluster.controllers:
        pytest.skip("no controller-manager: no Deployment creates pods")
    webhook = cluster_target.webhook
    if not isinstance(webhook, LocalInjector):
        found = Gauges(ChartAudit(cluster))
        found.source.metrics()  # one ready audit pod
        yield found
        return
    chart_audit = next(
        d for d in cluster.release.docs if d["kind"] == "Deployment" and component(d) == "audit"
    )
    [container] = chart_audit["spec"]["template"]["spec"]["containers"]
    root = tmp_path_factory.mktemp("fleet-audit")
    # The last-good ConfigMap as a fresh install mounts it: empty.
    (root / "last-good").mkdir()
    local = {
        "--templates-dir": str(webhook.templates_volume.root),
        "--last-good-dir": str(root / "last-good"),
    }
    args = [
        f"{flag}={local[flag]}" if flag in local else a
        for a in container["args"][1:]
        for flag in [a.partition("=")[0]]
        if flag not in ("--host", "--metrics-port")  # audit() sets them
    ]
    with audit(root, cluster.config.kubeconfig, *args) as process:
        deadline = time.monotonic() + DEADLINE
        while process.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, process.log.read_text()
            time.sleep(0.2)
        yield Gauges(LocalAudit(process))
        assert "Traceback" not in process.log.read_text()


@pytest.fixture
def fleet(cluster: Cluster, cluster_target: Target, gauges: Gauges) -> Iterator[Fleet]:
    """A namespace of its own (selected by the e2e release's namespaceSelector)."""
    kubectl = cluster.kubectl
    labels = " ".join(f"{k}={v}" for k, v in NAMESPACE_LABELS.items())
    with kubectl.scratch_namespace("e2e-fleet") as namespace:
        kubectl.run("label", "namespace", namespace, *labels.split())
        deadline = time.monotonic() + 60
        while kubectl.run(
            "get", "serviceaccount", "default", f"--namespace={namespace}", check=False
        ).returncode:
            assert time.monotonic() < deadline, f"no ServiceAccount default in {namespace}"
            time.sleep(0.25)
        yield Fleet(cluster, cluster_target, Operator(cluster, cluster_target), gauges, namespace)


# --- the webhook out of the way ---


def failure_policy(cluster: Cluster, policy: str) -> None:
    """`helm upgrade` of the release with `webhook.failurePolicy` set, as an operator sets it."""
    # The installed chart (this checkout's, or E2E_CHART's release) with its values, plus this.
    cluster.upgrade(values={"webhook": {"failurePolicy": policy}})
    name = webhook_object(cluster.release.docs, "Deployment")["metadata"]["name"]
    configuration = cluster.kubectl.get("mutatingwebhookconfiguration", name)
    pods = [w for w in configuration["webhooks"] if not w["name"].startswith("helm-test.")]
    assert {w["failurePolicy"] for w in pods} == {policy}


@contextlib.contextmanager
def webhook_down(fleet: Fleet) -> Iterator[None]:
    """`failurePolicy: Ignore` and no webhook answering for the body of the `with`: the chart's
    Deployment scaled to 0 (a local webhook: its process stopped); then back, ready, and Fail."""
    cluster = fleet.cluster
    failure_policy(cluster, "Ignore")
    try:
        webhook = fleet.target.webhook
        if isinstance(webhook, LocalInjector):
            with webhook.down():
                yield
            return
        assert isinstance(webhook, InClusterWebhook)
        deployment_ = webhook_object(cluster.release.docs, "Deployment")
        name, replicas = deployment_["metadata"]["name"], deployment_["spec"]["replicas"]
        scale = ["scale", "deployment", name, f"--namespace={NAMESPACE}"]
        cluster.kubectl.run(*scale, "--replicas=0")
        try:
            deadline = time.monotonic() + POD_TIMEOUT
            while webhook.all_pods():
                assert time.monotonic() < deadline, "the webhook's pods never went away"
                time.sleep(0.5)
            yield
        finally:
            cluster.kubectl.run(*scale, f"--replicas={replicas}")
            cluster.kubectl.run(
                "rollout", "status", f"deployment/{name}", f"--namespace={NAMESPACE}",
                f"--timeout={POD_TIMEOUT:.0f}s", timeout=POD_TIMEOUT + 30,
            )  # fmt: skip
            cluster.wait_for_endpoints()
    finally:
        failure_policy(cluster, "Fail")


# --- the scenarios ---


def test_pods_created_while_the_webhook_is_down_are_missed_until_restarted(
    fleet: Fleet,
) -> None:
    namespace = fleet.namespace
    restart = f"kubectl rollout restart deployment/web -n {namespace}"
    with webhook_down(fleet):
        created = time.monotonic()
        fleet.web()
        fleet.wait_pods(2, injected=False)
        fleet.gauges.until(namespace, {(TEMPLATE, "missed"): 2.0}, DEADLINE)
        took = time.monotonic() - created
        code, found = fleet.outdated()
        assert code == 1, found
        [workload] = found["workloads"]
        assert (workload["kind"], workload["name"], workload["command"]) == (
            "Deployment",
            "web",
            restart,
        )
        states = {(t["name"], t["state"]) for p in workload["pods"] for t in p["templates"]}
        assert states == {(TEMPLATE, "missed")}
        assert found["states"]["missed"] == 2
        if not fleet.local:
            assert (
                found["served"]["unknown"] == f"no ready webhook replica in namespace {NAMESPACE}"
            )
            assert found["served"]["down"] is True
            assert workload["fix"].startswith("wait until a webhook replica is ready"), workload
            assert workload["fix"].endswith(f"then: {restart}")
    assert took < DEADLINE
    figure(f"fleet: pods created without their sidecar counted missed in {took:.1f} s")
    # The webhook answers again: the same pods, the same fix, now to be run.
    code, found = fleet.outdated()
    [workload] = found["workloads"]
    assert (code, workload["fix"], workload["wait"]) == (1, restart, [])
    table = fleet.operator.run("outdated", "-n", namespace)
    assert restart in table.stdout and "missed" in table.stdout, table.stdout
    fleet.restart()
    fleet.all_current(2)
    assert (TEMPLATE, "missed") in fleet.gauges.zeros(namespace), "back to 0, still exported"


def test_a_template_edit_waits_for_the_webhook_then_lists_the_pods_outdated(
    fleet: Fleet,
) -> None:
    namespace = fleet.namespace
    fleet.web()
    fleet.wait_pods(2, injected=True)
    fleet.all_current(2)
    [before] = {d[TEMPLATE] for d in fleet.replica_digests()}
    original = before
    data = fleet.target.webhook.templates()
    restart = f"kubectl rollout restart deployment/web -n {namespace}"
    try:
        # Where the replicas are read through the pods proxy, `outdated` right after an edit
        # finds one behind (the kubelet takes seconds to deliver it) and says to wait. Whether
        # it was is checked after it answered: a replica still on the old version then was on
        # it when `outdated` read it. The kubelet can be quicker than the CLI: edit again.
        waited = None
        for attempt in range(1, 4):
            fleet.edit(bumped(attempt))
            code, found = fleet.outdated()
            still_behind = any(d.get(TEMPLATE) == before for d in fleet.replica_digests())
            if fleet.local or not found["served"]["known"]:
                break
            if still_behind:
                waited = found
                figure(f"fleet: `outdated` said to wait after edit {attempt} of at most 3")
                break
            before = {d[TEMPLATE] for d in fleet.replica_digests()}.pop()
        if not fleet.local:
            assert waited is not None, "the kubelet delivered each of 3 edits before `outdated`"
            assert waited["served"]["behind"][TEMPLATE].startswith("the ConfigMap holds")
            [workload] = waited["workloads"]
            assert workload["wait"] == [TEMPLATE]
            assert workload["fix"] == (
                f"wait until the webhook serves the ConfigMap's {TEMPLATE} (a restart now "
                f"recreates the old version), then: {restart}"
            )
        code, found = fleet.outdated()
        configmap_digest = _configmap_digest(found)
        fleet.served(configmap_digest)
        fleet.gauges.until(namespace, {(TEMPLATE, "outdated"): 2.0}, KUBELET_SYNC_BOUND)
        code, found = fleet.outdated()
        [workload] = found["workloads"]
        assert (code, workload["wait"], workload["fix"]) == (1, [], restart), workload
        states = {(t["name"], t["state"]) for p in workload["pods"] for t in p["templates"]}
        assert states == {(TEMPLATE, "outdated")}
        fleet.restart()
        fleet.all_current(2)
        assert (TEMPLATE, "outdated") in fleet.gauges.zeros(namespace)
    finally:
        fleet.put_back(data, original)


def bumped(attempt: int) -> Callable[[str], str]:
    """A new version of TEMPLATE: its image's default, another patch release per attempt."""

    def change(text: str) -> str:
        changed, count = re.subn(r"fluent-bit:[0-9.]+", f"fluent-bit:3.2.{attempt}", text)
        assert count == 1, "log-shipper names its fluent-bit image once"
        return changed

    return change


def _configmap_digest(found: dict[str, Any]) -> str:
    """The ConfigMap's TEMPLATE digest, as `outdated` reports the pods' reasons."""
    reasons = [
        t["reason"]
        for w in found["workloads"]
        for p in w["pods"]
        for t in p["templates"]
        if t["name"] == TEMPLATE and t["state"] == "outdated"
    ]
    assert reasons, found
    return str(reasons[0]).rsplit(" ", 1)[-1]


def test_a_template_restricted_away_from_the_namespace_blocks_its_pods(fleet: Fleet) -> None:
    namespace = fleet.namespace
    fleet.web()
    fleet.wait_pods(2, injected=True)
    fleet.all_current(2)

    def restricted(text: str) -> str:
        document = yaml.safe_load(text)
        document["namespaces"] = ["e2e-profile"]
        return yaml.safe_dump(document, sort_keys=False)

    [original] = {d[TEMPLATE] for d in fleet.replica_digests()}
    data = fleet.edit(restricted)
    reason = (
        f"template {TEMPLATE!r} is not allowed in namespace {namespace!r} (allowed: e2e-profile)"
    )
    try:
        took = fleet.gauges.until(namespace, {(TEMPLATE, "blocked"): 2.0}, KUBELET_SYNC_BOUND)
        figure(f"fleet: pods of a template restricted away counted blocked in {took:.1f} s")
        code, found = fleet.outdated()
        assert code == 1, found
        [workload] = found["workloads"]
        found_states = {
            (t["name"], t["state"], t["reason"]) for p in workload["pods"] for t in p["templates"]
        }
        assert found_states == {(TEMPLATE, "blocked", reason)}
        # Nothing to run until the reason is fixed: a restart would be refused.
        assert (workload["command"], workload["first"]) == (None, [reason])
        assert workload["fix"] == f"first: {reason}"
        table = fleet.operator.run("outdated", "-n", namespace)
        assert "blocked" in table.stdout and "not allowed in namespace" in table.stdout
    finally:
        fleet.put_back(data, original)
    # The restriction lifted: the same version as before, so current again without a restart;
    # restarted all the same (the pods come back through the webhook) and still current.
    fleet.all_current(2)
    assert (TEMPLATE, "blocked") in fleet.gauges.zeros(namespace)
    fleet.restart()
    fleet.all_current(2)
