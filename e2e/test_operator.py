"""The operator commands (`check`, `outdated`, `explain`) run as users run them — the real
console script, a kubeconfig — against the release the suite installed in a real cluster.

Cluster mode only. Where the cluster has no kubelet and no cert-manager (a bare control plane),
the suite stands in for them as they would act: it writes the serving Secret the local webhook
process serves, and marks the webhook's pods Ready (pods/status), so the ReplicaSet and
Deployment controllers see ready replicas."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.chart import NAMESPACE
from e2e.cluster import Cluster
from e2e.expect import digests
from e2e.local import LocalInjector
from e2e.pki import CAIssuer
from e2e.pods import (
    APPS,
    EXCLUDED,
    INJECT,
    NAMESPACE_LABELS,
    OWNERS,
    PROFILE,
    PROFILE_NAMESPACES,
    STATUS,
    Obj,
    bare,
    deployment,
    stateful_set,
)
from e2e.target import Target
from e2e.tools import COMMAND
from tests.chart.helm import only, webhook_object

SHIPPER = "log-shipper.yaml"
PARAM = "sidecar-injector.io/log-shipper"
POD_TIMEOUT = 60.0


@dataclass
class Operator:
    """Runs the commands against the cluster; stands in for kubelet and cert-manager."""

    cluster: Cluster
    target: Target

    def run(self, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        config = kubeconfig or self.cluster.config.kubeconfig
        return subprocess.run(
            [COMMAND, *args, f"--kubeconfig={config}", f"--release-namespace={NAMESPACE}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def json(self, *args: str) -> tuple[int, Any]:
        result = self.run(*args, "-o", "json")
        assert result.returncode in (0, 1), result.stderr
        return result.returncode, json.loads(result.stdout)

    def checks(self) -> tuple[int, dict[str, list[dict[str, str]]]]:
        """Exit code, and the check results by check name."""
        code, found = self.json("check")
        by: dict[str, list[dict[str, str]]] = {}
        for result in found["checks"]:
            by.setdefault(result["check"], []).append(result)
        return code, by

    @property
    def kubectl(self) -> Any:
        return self.cluster.kubectl

    def webhook_pods(self) -> list[str]:
        labels = webhook_object(self.cluster.release.docs, "Deployment")["spec"]["selector"][
            "matchLabels"
        ]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = self.kubectl.get("pods", f"--namespace={NAMESPACE}", f"--selector={selector}")
        return [p["metadata"]["name"] for p in pods["items"]]

    def mark_ready(self, ready: bool) -> None:
        """What the kubelet reports for the webhook's pods, then the controllers' view."""
        state = "True" if ready else "False"
        for index, pod in enumerate(self.webhook_pods()):
            status = {
                "phase": "Running",
                "podIP": f"10.244.0.{10 + index}",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "ContainersReady", "status": state},
                    {"type": "Ready", "status": state},
                ],
            }
            self.kubectl.run(
                "patch", "pod", pod, f"--namespace={NAMESPACE}", "--subresource=status",
                "--type=merge", f"--patch={json.dumps({'status': status})}",
            )  # fmt: skip
        name = webhook_object(self.cluster.release.docs, "Deployment")["metadata"]["name"]
        deadline = time.monotonic() + POD_TIMEOUT
        while True:
            found = self.kubectl.get("deployment", name, f"--namespace={NAMESPACE}")
            if bool(found["status"].get("readyReplicas")) == ready:
                return
            assert time.monotonic() < deadline, f"deployment readiness never became {ready}"
            time.sleep(0.5)

    def kubeconfig_with(self, path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
        """The current context's kubeconfig, changed (another user, another server)."""
        view = self.kubectl.run("config", "view", "--raw", "--minify", "-o", "json").stdout
        source = json.loads(view)
        change(source)
        path.write_text(json.dumps(source))
        return path

    def write_secret(self, data: Mapping[str, str]) -> None:
        """The serving Secret, as cert-manager writes it."""
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": self.cluster.release.tls_secret_name, "namespace": NAMESPACE},
            "stringData": dict(data),
        }
        self.kubectl.apply(secret)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, cluster_target: Target) -> Iterator[Operator]:
    found = Operator(cluster, cluster_target)
    webhook = cluster_target.webhook
    stand_in = isinstance(webhook, LocalInjector)
    if isinstance(webhook, LocalInjector):
        found.write_secret(webhook.leaf.secret)
        found.mark_ready(True)
    yield found
    if stand_in:
        found.mark_ready(False)


@contextlib.contextmanager
def relabeled(operator: Operator, namespace: str, value: str | None) -> Iterator[None]:
    """The namespace's inject label set to `value` (None: removed) for the `with` body."""
    before = operator.kubectl.get("namespace", namespace)["metadata"].get("labels", {}).get(INJECT)

    def label(to: str | None) -> bool:
        return operator.target.apiserver.label_namespace(namespace, to).allowed

    assert label(value)
    try:
        yield
    finally:
        if not label(before):
            # A deliberate typo (e2e-typo's) is refused by the namespace-labels webhook: put
            # it back with that entry out of the way (its removal takes a moment to apply).
            with operator.cluster.unvalidated("namespace-labels"):
                deadline = time.monotonic() + 30
                while not label(before):
                    assert time.monotonic() < deadline, f"{namespace}: {INJECT} not restored"
                    time.sleep(0.5)


# --- check ---


def test_a_healthy_install_passes_every_check(operator: Operator) -> None:
    with relabeled(operator, "e2e-typo", None):
        code, checks = operator.checks()
        table = operator.run("check")
    service_mode = operator.cluster.config.webhook == "service"
    problems = {
        name: [r["message"] for r in results if r["level"] != "ok"]
        for name, results in checks.items()
        if any(r["level"] != "ok" for r in results)
    }
    # The suite's Service mode reaches the process through an ExternalName Service.
    assert problems == ({"endpoints": [checks["endpoints"][0]["message"]]} if service_mode else {})
    assert code == 0 and table.returncode == 0
    assert "0 failed" in table.stdout.splitlines()[-1]
    assert set(checks) >= {
        "webhook configuration",
        "template validation",
        "label validation",
        "endpoints",
        "serving certificate",
        "replicas",
        "templates",
        "profiles",
        "namespace labels",
    }


def test_a_ca_bundle_from_another_ca_is_named_with_the_fix(operator: Operator) -> None:
    name = only(operator.cluster.release.docs, "MutatingWebhookConfiguration")["metadata"]["name"]
    stored = operator.kubectl.get("mutatingwebhookconfiguration", name)
    original = stored["webhooks"][0]["clientConfig"]["caBundle"]
    other = CAIssuer(operator.cluster.release.ca_certificate["spec"]).bundle

    def set_bundle(value: str) -> None:
        patch = [{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": value}]
        operator.kubectl.run(
            "patch", "mutatingwebhookconfiguration", name, "--type=json",
            f"--patch={json.dumps(patch)}",
        )  # fmt: skip

    set_bundle(base64.b64encode(other).decode())
    try:
        code, checks = operator.checks()
    finally:
        set_bundle(original)
    assert code == 1
    [failed] = [r for r in checks["serving certificate"] if r["level"] == "fail"]
    assert "the caBundle does not verify the serving certificate" in failed["message"]
    assert stored["webhooks"][0]["name"] in failed["message"]
    assert failed["fix"].startswith("make the caBundle the CA that signs the serving certificate")


@pytest.mark.parametrize("problem", ["expired", "wrong-name"])
def test_an_expired_or_misnamed_serving_certificate_fails(operator: Operator, problem: str) -> None:
    webhook = operator.target.webhook
    if not isinstance(webhook, LocalInjector):
        pytest.skip(
            "the serving Secret is the running webhook pods' own here (cert-manager's, or the "
            "suite's in node mode): a bad one would take the webhook down for the suite"
        )
    spec = dict(operator.cluster.release.serving_certificate["spec"])
    if problem == "expired":
        spec["duration"] = "1s"
        issued = webhook.ca.issue(spec, webhook.extra_names)
        time.sleep(2.5)  # past not-after, whatever the issuer's clock skew allowance
        says = "the serving certificate expired on"
    else:
        spec["dnsNames"] = ["someone-else.example.com"]
        issued = webhook.ca.issue(spec)
        says = "the serving certificate does not cover"
    operator.write_secret(issued.secret)
    try:
        code, checks = operator.checks()
    finally:
        operator.write_secret(webhook.leaf.secret)
    assert code == 1
    failed = [r for r in checks["serving certificate"] if r["level"] == "fail"]
    assert failed and all(says in r["message"] for r in failed), failed


def test_a_webhook_scaled_to_zero_is_named_as_such(operator: Operator) -> None:
    if not isinstance(operator.target.webhook, LocalInjector):
        pytest.skip("scaling the chart's own replicas would take the webhook down for the suite")
    name = webhook_object(operator.cluster.release.docs, "Deployment")["metadata"]["name"]

    def scale(replicas: int) -> None:
        operator.kubectl.run(
            "scale", "deployment", name, f"--namespace={NAMESPACE}", f"--replicas={replicas}"
        )

    scale(0)
    try:
        code, checks = operator.checks()
    finally:
        scale(2)
        deadline = time.monotonic() + POD_TIMEOUT
        while len(operator.webhook_pods()) != 2:
            assert time.monotonic() < deadline, "the webhook's pods never came back"
            time.sleep(0.5)
        operator.mark_ready(True)
    assert code == 1
    [replicas] = checks["replicas"]
    assert replicas["level"] == "fail"
    assert f"deployment {name} is scaled to 0 replicas: opted-in pods are" in replicas["message"]
    assert f"scale deployment {name} --replicas=2" in replicas["fix"]


def test_no_ready_replica_and_no_ready_endpoint_fail(operator: Operator) -> None:
    webhook = operator.target.webhook
    if not isinstance(webhook, LocalInjector):
        pytest.skip("the kubelet reports the pods' readiness here")
    operator.mark_ready(False)
    try:
        code, checks = operator.checks()
    finally:
        operator.mark_ready(True)
    assert code == 1
    [replicas] = checks["replicas"]
    assert replicas["level"] == "fail" and "has no ready replica (of 2)" in replicas["message"]
    [endpoints] = checks["endpoints"]
    expected = {
        "external": "ok",  # every entry is called at webhook.url: no endpoints to have
        "service": "warn",  # the suite's ExternalName Service: endpoints not checked
        "in-cluster": "fail",
    }[operator.cluster.config.webhook]
    assert endpoints["level"] == expected, endpoints


def test_a_broken_template_in_the_configmap_fails_with_its_line(operator: Operator) -> None:
    webhook = operator.target.webhook
    if not isinstance(webhook, LocalInjector):
        pytest.skip("the validating webhook refuses the broken edit here")
    data = webhook.templates()
    broken = {**data, SHIPPER: data[SHIPPER] + "sidekicks: []\n"}
    line = len(broken[SHIPPER].splitlines())
    with webhook.down():  # failurePolicy Ignore: the edit goes through unvalidated
        assert operator.target.apiserver.update_templates(broken).allowed
    try:
        code, checks = operator.checks()
    finally:
        assert operator.target.apiserver.update_templates(data).allowed
    assert code == 1
    [templates] = checks["templates"]
    assert templates["level"] == "fail"
    assert f"{SHIPPER}:{line}: sidekicks: unknown key" in templates["message"]


def test_a_namespace_labeled_with_an_unknown_profile_fails(operator: Operator) -> None:
    code, checks = operator.checks()
    assert code == 1
    [typo] = [r for r in checks["namespace labels"] if r["level"] == "fail"]
    assert (
        "namespace e2e-typo is labeled sidecar-injector.io/inject=e2e-observabilty"
        in typo["message"]
    )
    assert typo["fix"].startswith("kubectl label namespace e2e-typo sidecar-injector.io/inject=")


def test_forbidden_and_unreachable_are_one_line_and_exit_2(
    operator: Operator, tmp_path: Path
) -> None:
    kubectl = operator.kubectl
    kubectl.run("create", "serviceaccount", "e2e-reader", f"--namespace={APPS}")
    try:
        token = kubectl.run("create", "token", "e2e-reader", f"--namespace={APPS}").stdout.strip()

        def as_reader(source: dict[str, Any]) -> None:
            source["users"] = [{"name": "reader", "user": {"token": token}}]
            source["contexts"][0]["context"]["user"] = "reader"

        kubeconfig = operator.kubeconfig_with(tmp_path / "reader.kubeconfig", as_reader)
        denied = operator.run("check", kubeconfig=kubeconfig)
        assert denied.returncode == 2
        [line] = denied.stderr.splitlines()
        assert line.startswith(
            f"sidecar-injector check: error: forbidden to list deployments in namespace {NAMESPACE}"
        )
        assert 'cannot list resource "deployments"' in line and "ClusterRole and Role" in line
        # Bound to the chart's reader roles, the same identity can run every command.
        role = f"{operator.cluster.release.templates_configmap['metadata']['name']}"
        reader = role.removesuffix("-templates") + "-reader"
        who = f"--serviceaccount={APPS}:e2e-reader"
        kubectl.run("create", "clusterrolebinding", "e2e-reader", f"--clusterrole={reader}", who)
        kubectl.run(
            "create",
            "rolebinding",
            "e2e-reader",
            f"--role={reader}",
            who,
            f"--namespace={NAMESPACE}",
        )
        try:
            deadline = time.monotonic() + 10  # RBAC caches settle
            while (allowed := operator.run("check", kubeconfig=kubeconfig)).returncode == 2:
                assert time.monotonic() < deadline, allowed.stderr
                time.sleep(0.5)
            pod = bare("p", "log-shipper")
            pod["metadata"]["namespace"] = APPS
            for args in (("outdated", "-A"), ("explain", "-f", "-")):
                ran = subprocess.run(
                    [COMMAND, *args, f"--kubeconfig={kubeconfig}",
                     f"--release-namespace={NAMESPACE}"],
                    input=json.dumps(pod), capture_output=True, text=True, timeout=60, check=False,
                )  # fmt: skip
                assert ran.returncode in (0, 1), ran.stderr
        finally:
            kubectl.run("delete", "clusterrolebinding", "e2e-reader", check=False)
            kubectl.run(
                "delete", "rolebinding", "e2e-reader", f"--namespace={NAMESPACE}", check=False
            )
    finally:
        kubectl.run("delete", "serviceaccount", "e2e-reader", f"--namespace={APPS}", check=False)

    def elsewhere(source: dict[str, Any]) -> None:
        source["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"

    unreachable = operator.kubeconfig_with(tmp_path / "unreachable.kubeconfig", elsewhere)
    down = operator.run("outdated", kubeconfig=unreachable)
    assert down.returncode == 2
    [line] = down.stderr.splitlines()
    assert line.startswith(
        "sidecar-injector outdated: error: cannot reach the cluster at https://127.0.0.1:1"
    )


def test_a_wrong_release_namespace_is_one_line_naming_where_releases_are(
    operator: Operator,
) -> None:
    result = subprocess.run(
        [COMMAND, "check", f"--kubeconfig={operator.cluster.config.kubeconfig}", "-n", APPS],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"sidecar-injector check: error: no sidecar-injector release in namespace '{APPS}' "
        f"(releases found in: {NAMESPACE}); pass --release-namespace\n"
    )


# --- outdated ---


def workloads() -> list[Obj]:
    """One of each kind of owner, each asking for log-shipper; a Deployment asking only for
    trace-agent (never outdated here); a bare Pod."""
    shipping = {INJECT: "log-shipper"}
    statefulset = stateful_set("db", "log-shipper", replicas=1)
    daemonset = deployment("agent", "log-shipper")
    daemonset["kind"] = "DaemonSet"
    del daemonset["spec"]["replicas"]
    daemonset["spec"]["template"]["spec"]["tolerations"] = [{"operator": "Exists"}]
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 3 * * *",
            "suspend": True,
            "jobTemplate": {"spec": {"template": job_template(shipping)}},
        },
    }
    return [deployment("web", "log-shipper"), deployment("traced", "trace-agent", replicas=1),
            statefulset, daemonset, cronjob]  # fmt: skip


def job_template(annotations: Mapping[str, str]) -> Obj:
    return {
        "metadata": {"annotations": dict(annotations)},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "app", "image": "busybox:1.36.1"}],
        },
    }


def pods_of(operator: Operator, namespace: str = OWNERS) -> list[Obj]:
    items: list[Obj] = operator.kubectl.get("pods", f"--namespace={namespace}")["items"]
    return items


def wait_for_pods(operator: Operator, expected: int) -> list[Obj]:
    deadline = time.monotonic() + POD_TIMEOUT
    while True:
        found = [p for p in pods_of(operator) if STATUS in p["metadata"].get("annotations", {})]
        if len(found) >= expected:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {expected} injected pods appeared"
        time.sleep(0.5)


@pytest.fixture
def owners(operator: Operator) -> Iterator[list[Obj]]:
    """The workloads of `workloads()` plus a Job of the CronJob, a bare Pod, a pod whose
    status annotation is malformed, and a Node for the DaemonSet where the cluster has none
    (no kubelet behind it)."""
    kubectl = operator.kubectl
    if not operator.cluster.controllers:
        pytest.skip("no controller-manager: no workload creates pods")
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "e2e-node"}}
    created: list[Obj] = []
    try:
        # One node for the DaemonSet's one pod: a stand-in only where no kubelet runs (a
        # second node would double its pods on a cluster that has one).
        if not operator.cluster.has_nodes():
            kubectl.apply(node)
        for workload in workloads():
            workload["metadata"]["namespace"] = OWNERS
            kubectl.apply(workload)
            created.append(workload)
        cronjob = kubectl.get("cronjob", "nightly", f"--namespace={OWNERS}")
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "nightly-manual",
                "namespace": OWNERS,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "nightly",
                        "uid": cronjob["metadata"]["uid"],
                        "controller": True,
                    },
                ],
            },
            "spec": {"template": job_template({INJECT: "log-shipper"})},
        }
        kubectl.apply(job)
        created.append(job)
        solo = bare("solo", "log-shipper")
        solo["metadata"]["namespace"] = OWNERS
        kubectl.apply(solo)
        created.append(solo)
        broken = bare("broken-status", None)
        broken["metadata"] |= {"namespace": OWNERS, "annotations": {STATUS: "{not json"}}
        kubectl.apply(broken)
        created.append(broken)
        yield created
    finally:
        for obj in reversed(created):
            kubectl.run(
                "delete", obj["kind"].lower(), obj["metadata"]["name"], f"--namespace={OWNERS}",
                "--wait=false", check=False,
            )  # fmt: skip
        kubectl.run("delete", "node", "e2e-node", check=False)


def test_outdated_lists_exactly_the_pods_of_the_edited_template(
    operator: Operator, owners: list[Obj]
) -> None:
    webhook = operator.target.webhook
    # web 2 + traced 1 + db 1 + agent 1 + the Job's 1 + solo 1 (+ the malformed one, no count)
    wait_for_pods(operator, 7)
    code, before = operator.json("outdated", "-n", OWNERS, "--exit-code")
    assert (code, before["workloads"]) == (0, [])
    assert before["errors"] == [
        {"namespace": OWNERS, "pod": "broken-status", "error": before["errors"][0]["error"]}
    ]
    data = webhook.templates()
    old_digest = digests(webhook.debug_templates())["log-shipper"]
    edited = {**data, SHIPPER: data[SHIPPER].replace("fluent-bit:3.1.4", "fluent-bit:3.2.3")}
    assert operator.target.apiserver.update_templates(edited).allowed
    webhook.edit_templates(edited)  # the kubelet's part
    try:
        code, after = operator.json("outdated", "-n", OWNERS, "--exit-code")
        assert code == 1
        grouped = {
            (w["kind"], w["name"]): (w["command"], sorted(p["name"] for p in w["pods"]))
            for w in after["workloads"]
        }
        assert {key: len(pods) for key, (_, pods) in grouped.items()} == {
            ("Deployment", "web"): 2,
            ("StatefulSet", "db"): 1,
            ("DaemonSet", "agent"): 1,
            ("CronJob", "nightly"): 1,
            ("Pod", "solo"): 1,
        }
        assert (
            grouped["Deployment", "web"][0] == f"kubectl rollout restart deployment/web -n {OWNERS}"
        )
        assert (
            grouped["DaemonSet", "agent"][0]
            == f"kubectl rollout restart daemonset/agent -n {OWNERS}"
        )
        assert grouped["CronJob", "nightly"][0].startswith("none needed")
        assert grouped["Pod", "solo"][0] == f"kubectl delete pod solo -n {OWNERS}"
        every = {t["name"] for w in after["workloads"] for p in w["pods"] for t in p["templates"]}
        assert every == {"log-shipper"}
        table = operator.run("outdated", "-A")
        assert f"kubectl rollout restart statefulset/db -n {OWNERS}" in table.stdout
        assert "malformed status annotation" in table.stderr
        # While a replica still serves the old version, the fix is to wait (a restart now
        # would recreate the old version); the served version is read through the pods proxy
        # where the webhook runs as the chart's pods.
        for workload in after["workloads"]:
            if "log-shipper" in after["served"]["behind"]:
                assert workload["fix"].startswith("wait until the webhook serves"), workload
        served = wait_until_served(operator, "log-shipper", old_digest)
        assert served["known"] == (operator.cluster.config.webhook in ("in-cluster", "node"))
        # Pods recreated through the webhook get the new version: nothing is outdated.
        outdated = [p for _, (_, pods) in grouped.items() for p in pods]
        operator.kubectl.run("delete", "pod", *outdated, f"--namespace={OWNERS}", "--wait=false")
        solo = bare("solo", "log-shipper")
        solo["metadata"]["namespace"] = OWNERS
        deadline = time.monotonic() + POD_TIMEOUT
        while (
            operator.kubectl.run("get", "pod", "solo", f"-n={OWNERS}", check=False).returncode == 0
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        operator.kubectl.apply(solo)
        wait_for_pods(operator, 7)
        deadline = time.monotonic() + POD_TIMEOUT
        while (now := operator.json("outdated", "-n", OWNERS, "--exit-code"))[0] != 0:
            assert time.monotonic() < deadline, now[1]["workloads"]
            time.sleep(1)
        assert now[1]["workloads"] == []
    finally:
        assert operator.target.apiserver.update_templates(data).allowed
        webhook.edit_templates(data)


def test_outdated_names_pods_their_namespace_asked_for_after_they_were_created(
    operator: Operator,
) -> None:
    """A pod created before its namespace was labeled with a profile runs without the
    profile's sidecars: `outdated` calls it missed, with the command that recreates it, and
    exits 1 with --exit-code."""
    kubectl = operator.kubectl
    with kubectl.scratch_namespace("e2e-late") as namespace:
        # Selected by the suite's webhook.namespaceSelector, as every test namespace.
        kubectl.run(
            "label", "namespace", namespace, *[f"{k}={v}" for k, v in NAMESPACE_LABELS.items()]
        )
        early = bare("early", None)  # no opt-in yet: never sent to the webhook
        early["metadata"]["namespace"] = namespace
        kubectl.apply(early)
        code, before = operator.json("outdated", "-n", namespace, "--exit-code")
        assert (code, before["workloads"]) == (0, [])
        kubectl.run("label", "namespace", namespace, f"{INJECT}={PROFILE}")
        code, after = operator.json("outdated", "-n", namespace, "--exit-code")
        assert code == 1
        [workload] = after["workloads"]
        assert (workload["kind"], workload["name"]) == ("Pod", "early")
        assert workload["command"] == f"kubectl delete pod early -n {namespace}"
        [pod] = workload["pods"]
        args = operator.cluster.release.container["args"]
        flag = next(a for a in args if a.startswith(f"--profile={PROFILE}="))
        asked = flag.split("=", 2)[2].split(",")
        assert {(t["name"], t["state"]) for t in pod["templates"]} == {
            (name, "missed") for name in asked
        }
        assert after["states"]["missed"] == 1


def wait_until_served(operator: Operator, template: str, old: str) -> dict[str, Any]:
    """`outdated`'s view of what the webhook serves, once no replica is behind the ConfigMap
    (the kubelet delivers an edit to the chart's pods seconds later); where that cannot be
    read (a local process), once the process's own /debug/templates no longer serves `old`."""
    deadline = time.monotonic() + POD_TIMEOUT
    while True:
        served: dict[str, Any] = operator.json("outdated", "-n", OWNERS)[1]["served"]
        if served["known"]:
            if not served["behind"]:
                return served
        elif digests(operator.target.webhook.debug_templates())[template] != old:
            return served
        assert time.monotonic() < deadline, served
        time.sleep(1)


# --- explain ---

BAD_OVERRIDE = {INJECT: "log-shipper", f"{PARAM}.logLevel": "x"}
LOCKED = {INJECT: "e2e-restricted", "sidecar-injector.io/e2e-restricted.endpoint": "evil:1"}
EXPLAIN_CASES: list[tuple[str, str, dict[str, str], str, bool]] = [
    ("injected", APPS, {INJECT: "log-shipper"}, "injected", True),
    ("profiled", "e2e-profile", {}, "injected", True),
    ("excluded", EXCLUDED, {INJECT: "log-shipper"}, "excluded_namespace", False),
    ("disabled", "e2e-disabled", {INJECT: "log-shipper"}, "namespace_disabled", False),
    ("nothing", APPS, {}, "not_requested", False),
    ("typo", "e2e-typo", {}, "profile_not_found", False),
    ("false", "e2e-profile", {INJECT: "false"}, "opted_out", False),
    ("missing", APPS, {INJECT: "log-shiper"}, "template_not_found", False),
    ("override", APPS, BAD_OVERRIDE, "invalid_parameter", False),
    ("clash", APPS, {INJECT: "log-shipper,e2e-clash"}, "conflict", False),
    ("elsewhere", APPS, {INJECT: "e2e-restricted"}, "namespace_not_allowed", False),
    ("locked", "e2e-profile", LOCKED, "parameter_locked", False),
]  # fmt: skip


def manifest(tmp_path: Path) -> Path:
    docs = []
    for name, namespace, wanted, _, _ in EXPLAIN_CASES:
        pod = bare(name, None)
        pod["metadata"] = {"name": name, "namespace": namespace, "annotations": wanted}
        docs.append(pod)
    path = tmp_path / "pods.json"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs))
    return path


def test_explain_names_each_reason_online(operator: Operator, tmp_path: Path) -> None:
    code, found = operator.json("explain", "-f", str(manifest(tmp_path)))
    assert code == 1
    assert [(e["reason"], e["injected"]) for e in found] == [
        (reason, injected) for *_, reason, injected in EXPLAIN_CASES
    ]
    assert all(e["fix"] for e in found if not e["injected"])
    assert found[1]["message"] == f"would be injected with trace-agent, e2e-env (profile {PROFILE})"


def test_explain_offline_gives_the_same_verdicts(operator: Operator, tmp_path: Path) -> None:
    """With --templates-dir, the release's own flags and each namespace's label given as
    --namespace-label, the same reason for every case, without asking the cluster."""
    templates = operator.cluster.release.templates_dir(tmp_path / "templates")
    args = operator.cluster.release.args
    flags = [f"--{f}={args[f'--{f}']}" for f in ("default-templates", "exclude-namespaces")]
    flags += [f"--profile={p}" for p in args["--profile"].split(";")]
    command = [COMMAND, "explain", "-f", "-", "--templates-dir", str(templates), "-o", "json"]
    for name, namespace, wanted, reason, injected in EXPLAIN_CASES:
        pod = bare(name, None)
        pod["metadata"] = {"name": name, "namespace": namespace, "annotations": wanted}
        label = PROFILE_NAMESPACES.get(namespace)
        labeled = ["--namespace-label", label] if label is not None else []
        ran = subprocess.run(
            [*command, *flags, *labeled],
            input=json.dumps(pod), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert ran.returncode == (0 if injected else 1), ran.stderr
        assert json.loads(ran.stdout)[0]["reason"] == reason, name


def test_explain_a_live_pod_and_whether_it_is_outdated(operator: Operator) -> None:
    admitted = operator.target.apiserver.admit(bare("live", "log-shipper"), APPS)
    name = admitted.stored["metadata"]["name"]
    code, [found] = operator.json("explain", name, "-n", APPS)
    assert code == 0 and found["injected"] and found["outdated"] == []
    assert found["message"] == "injected with log-shipper, all current"
    plain = operator.target.apiserver.admit(bare("plain", None), APPS)
    code, [why] = operator.json("explain", plain.stored["metadata"]["name"], "-n", APPS)
    assert (code, why["reason"]) == (1, "not_requested")
    if not operator.cluster.controllers:
        return
    # The opt-in on the Deployment's own metadata, not its pod template: named as a hint.
    misplaced = deployment("misplaced", None, replicas=1)
    misplaced["metadata"] |= {"namespace": APPS, "annotations": {INJECT: "log-shipper"}}
    operator.kubectl.apply(misplaced)
    try:
        deadline = time.monotonic() + POD_TIMEOUT
        while not (
            pods := [
                p
                for p in pods_of(operator, APPS)
                if p["metadata"].get("generateName", "").startswith("misplaced-")
            ]
        ):
            assert time.monotonic() < deadline, "the Deployment created no pod"
            time.sleep(0.5)
        code, [found] = operator.json("explain", pods[0]["metadata"]["name"], "-n", APPS)
        assert (code, found["reason"]) == (1, "not_requested")
        assert found["hints"] == [
            f"{INJECT} is set on the Deployment's own metadata; it belongs in "
            "spec.template.metadata.annotations (the pods')"
        ]
    finally:
        operator.kubectl.run("delete", "deployment", "misplaced", f"--namespace={APPS}")


CERTIFICATE_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "certificates.cert-manager.io"},
    "spec": {
        "group": "cert-manager.io",
        "names": {"kind": "Certificate", "plural": "certificates", "singular": "certificate"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}
"""cert-manager's Certificate API, with an open schema: enough to store the object and its
Ready condition where cert-manager itself is not installed."""


def test_a_certificate_that_is_not_ready_fails(operator: Operator) -> None:
    kubectl = operator.kubectl
    if kubectl.run("get", "crd", "certificates.cert-manager.io", check=False).returncode == 0:
        pytest.skip("cert-manager is installed: its own Certificates are checked above")
    kubectl.apply(CERTIFICATE_CRD)
    try:
        deadline = time.monotonic() + POD_TIMEOUT
        while kubectl.run("get", "certificates", f"-n={NAMESPACE}", check=False).returncode:
            assert time.monotonic() < deadline, "the CRD was never served"
            time.sleep(0.5)
        certificate = {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "e2e-serving", "namespace": NAMESPACE},
            "spec": {"secretName": operator.cluster.release.tls_secret_name},
        }
        kubectl.apply(certificate)

        def ready(state: str, reason: str) -> None:
            condition = {"type": "Ready", "status": state, "reason": reason, "message": "e2e"}
            kubectl.run(
                "patch", "certificate", "e2e-serving", f"--namespace={NAMESPACE}",
                "--subresource=status", "--type=merge",
                f"--patch={json.dumps({'status': {'conditions': [condition]}})}",
            )  # fmt: skip

        ready("False", "Issuing")
        code, checks = operator.checks()
        [cert] = checks["cert-manager"]
        assert (code, cert["level"]) == (1, "fail")
        assert cert["message"] == "Certificate e2e-serving is not Ready (False: Issuing: e2e)"
        assert cert["fix"] == f"kubectl -n {NAMESPACE} describe certificate e2e-serving"
        ready("True", "Ready")
        _, checks = operator.checks()
        assert checks["cert-manager"][0]["level"] == "ok"
    finally:
        kubectl.run("delete", "crd", "certificates.cert-manager.io", check=False)
