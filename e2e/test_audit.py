"""`sidecar-injector audit`, the real process: without a reachable cluster it stays alive and
not ready and says why; on a real API server (cluster mode) its gauges follow pods created
without their sidecar, a namespace relabeled and pods deleted, within seconds; SIGTERM stops it
cleanly."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from e2e.chart import NAMESPACE, Release, render
from e2e.cluster import Cluster
from e2e.pods import NAMESPACE_LABELS, PROFILE, bare
from e2e.target import Target
from e2e.tools import COMMAND
from tests.chart.helm import Helm
from tests.chart.prometheus import MONITORING, Monitoring, Prometheus, prometheus, tools
from tests.chart.test_monitoring import AUDIT_ALERTS

SETTINGS_FLAGS = ("annotation-prefix", "default-templates", "exclude-namespaces", "native-sidecars")
"""The webhook's flags the audit takes too (plus every --profile): it decides as the webhook."""
PREFIX = "audit.e2e.sidecar-injector.io"
"""The audit's own prefix here: Pods that carry it never reach the webhook (the chart sends only
those with its prefix), so they are created without their sidecar whatever else is installed."""
DEADLINE = 30.0
"""The issue's bound: a pod without its sidecar shows in the gauges within 30 s."""
WAIT = 60.0
"""Bound on each alert state change: a scrape and an evaluation every second, `for` 5 s."""


class Audit:
    """One audit process on 127.0.0.1 with a free metrics port, its log kept."""

    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process = process
        self.log = log
        self.url = f"http://127.0.0.1:{self._port()}"

    def _port(self) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for line in self.lines():
                if line.get("event") == "listening":
                    return int(line["metrics_port"])
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"no listening line: {self.log.read_text()}")

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.log.read_text().splitlines() if x.startswith("{")]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def pods(self) -> dict[tuple[str, str, str], float]:
        families = text_string_to_metric_families(self.get("/metrics").text)
        return {
            (s.labels["namespace"], s.labels["template"], s.labels["state"]): s.value
            for family in families
            if family.name == "sidecar_injector_audit_pods"
            for s in family.samples
        }

    def until(self, wanted: dict[tuple[str, str, str], float], namespace: str) -> float:
        """Seconds until the namespace's series are exactly `wanted` (zeros aside)."""
        started = time.monotonic()
        while True:
            found = {k: v for k, v in self.pods().items() if k[0] == namespace and v}
            if found == wanted:
                return time.monotonic() - started
            assert time.monotonic() - started < DEADLINE, (found, wanted)
            time.sleep(0.2)


@contextmanager
def audit(tmp_path: Path, kubeconfig: Path, *flags: str) -> Iterator[Audit]:
    log = tmp_path / "audit.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [COMMAND, "audit", "--host=127.0.0.1", "--metrics-port=0",
             f"--kubeconfig={kubeconfig}", *flags],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        yield Audit(process, log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def stop(found: Audit) -> int:
    found.process.send_signal(signal.SIGTERM)
    return found.process.wait(10)


def test_without_a_reachable_cluster_it_is_alive_not_ready(
    tmp_path: Path, release: Release
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "x",
            "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:9"}}],
            "users": [{"name": "x", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        })
    )  # fmt: skip
    templates = release.templates_dir(tmp_path / "templates")
    with audit(tmp_path, kubeconfig, f"--templates-dir={templates}") as found:
        assert found.get("/healthz").status_code == 200
        ready = found.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["synced"] is False
        deadline = time.monotonic() + 10
        while not any(line.get("event") == "watch_failed" for line in found.lines()):
            assert time.monotonic() < deadline, found.log.read_text()
            time.sleep(0.2)
        assert found.pods() == {}
        assert stop(found) == 0
    assert "Traceback" not in found.log.read_text()


def _settings(release: Release) -> list[str]:
    args = {**release.args, "annotation-prefix": PREFIX}
    flags = [f"--{name}={args[name]}" for name in SETTINGS_FLAGS if name in args]
    profiles = [a for a in release.container["args"] if a.startswith("--profile=")]
    return [*flags, *profiles]


def _pod(name: str, namespace: str, inject: str | None) -> dict[str, Any]:
    pod = bare(name, None)
    pod["metadata"] = {
        "name": name,
        "namespace": namespace,
        "annotations": {f"{PREFIX}/inject": inject} if inject else {},
    }
    return pod


def test_the_gauges_follow_the_fleet(cluster: Cluster, tmp_path: Path) -> None:
    release = cluster.release
    templates = release.templates_dir(tmp_path / "templates")
    kubectl = cluster.kubectl
    with kubectl.scratch_namespace("e2e-audit") as namespace:
        with audit(
            tmp_path, cluster.config.kubeconfig, f"--templates-dir={templates}",
            *_settings(release),
        ) as found:  # fmt: skip
            deadline = time.monotonic() + DEADLINE
            while found.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, found.log.read_text()
                time.sleep(0.2)
            # Stored without their sidecar, as if no webhook had answered.
            for name in ("web-1", "web-2"):
                kubectl.apply(_pod(name, namespace, "log-shipper"))
            kubectl.apply(_pod("plain", namespace, None))
            missed = found.until({(namespace, "log-shipper", "missed"): 2}, namespace)
            # A label that names no profile: the pod without its own annotation would be
            # refused on its next restart.
            kubectl.run("label", "namespace", namespace, f"{PREFIX}/inject=e2e-nope", "--overwrite")
            found.until(
                {(namespace, "log-shipper", "missed"): 2, (namespace, "", "blocked"): 1},
                namespace,
            )
            kubectl.run("label", "namespace", namespace, f"{PREFIX}/inject-")
            kubectl.run("delete", "pod", "web-1", "web-2", "plain", "-n", namespace,
                        "--wait=false")  # fmt: skip
            found.until({}, namespace)
            zeros = {k: v for k, v in found.pods().items() if k[0] == namespace}
            assert zeros and set(zeros.values()) == {0.0}, "the series stay, at 0"
            assert stop(found) == 0
        assert missed < DEADLINE
        assert "Traceback" not in found.log.read_text()


def test_the_chart_s_audit_pod_sees_a_namespace_labeled_after_its_pods(
    cluster: Cluster, cluster_target: Target
) -> None:
    """The audit as the chart runs it (its own ServiceAccount and ClusterRole, the templates
    ConfigMap mounted), read through the API server's pods proxy: a pod that existed before
    its namespace asked for a profile is `missed` within the bound, and gone again once it
    is deleted."""
    if cluster.config.webhook not in ("in-cluster", "node") or not cluster.ready_nodes():
        pytest.skip("the chart's audit runs as a pod: it needs a node (node or in-cluster mode)")
    kubectl = cluster.kubectl
    [pod] = kubectl.get(
        "pods", f"--namespace={NAMESPACE}", "--selector=app.kubernetes.io/component=audit"
    )["items"]
    [port] = pod["spec"]["containers"][0]["ports"]
    name = pod["metadata"]["name"]
    proxy = f"/api/v1/namespaces/{NAMESPACE}/pods/{name}:{port['containerPort']}/proxy"

    def missed(namespace: str) -> dict[str, float]:
        families = text_string_to_metric_families(kubectl.raw(f"{proxy}/metrics"))
        return {
            s.labels["template"]: s.value
            for family in families
            if family.name == "sidecar_injector_audit_pods"
            for s in family.samples
            if s.labels["namespace"] == namespace and s.labels["state"] == "missed" and s.value
        }

    with kubectl.scratch_namespace("e2e-audit") as namespace:
        # Selected by the release's webhook.namespaceSelector, which the chart's audit is
        # given too: pods the webhook never sees are not audited.
        kubectl.run(
            "label", "namespace", namespace, *[f"{k}={v}" for k, v in NAMESPACE_LABELS.items()]
        )
        early = bare("early", None)
        early["metadata"]["namespace"] = namespace
        kubectl.apply(early)  # no opt-in yet: never sent to the webhook
        kubectl.run("label", "namespace", namespace, f"sidecar-injector.io/inject={PROFILE}")
        started = time.monotonic()
        while (found := missed(namespace)) != {"trace-agent": 1.0, "e2e-env": 1.0}:
            assert time.monotonic() - started < DEADLINE, found
            time.sleep(0.5)
        kubectl.run("delete", "pod", "early", f"--namespace={namespace}", "--wait=true")
        while missed(namespace):
            assert time.monotonic() - started < 2 * DEADLINE
            time.sleep(0.5)


# --- a real Prometheus on the audit: the chart's alerts fire and clear ---

FOR = "5s"
"""The audit alerts' `for` in the rule file Prometheus loads here: the chart's 10 min (24 h for
outdated) shortened, so firing is seen in a test; everything else as rendered."""
OLD_STATUS = json.dumps({"templates": [{"name": "log-shipper", "digest": "sha256:0ld"}]})
"""A status annotation recording a version of log-shipper the templates no longer hold."""


def _shortened_audit_rules(monitoring: Monitoring, path: Path) -> Path:
    """The chart's audit alert group as a rule file, each `for` shortened to FOR."""
    [group] = [g for g in monitoring.rule["spec"]["groups"] if g["name"].endswith("-audit")]
    shortened = copy.deepcopy(group)
    for rule in shortened["rules"]:
        assert rule.pop("for") in ("10m", "15m", "24h"), rule["alert"]
        rule["for"] = FOR
    assert {r["alert"] for r in shortened["rules"]} == AUDIT_ALERTS
    path.write_text(yaml.safe_dump({"groups": [shortened]}, sort_keys=False))
    return path


def _create_problems(kubectl: Any, namespace: str) -> None:
    """Two pods created without their sidecar, one with an old version, and a namespace label
    naming no profile (the fourth pod, asking nothing itself, would be refused if recreated)."""
    for name in ("web-1", "web-2"):
        kubectl.apply(_pod(name, namespace, "log-shipper"))
    old = _pod("old", namespace, "log-shipper")
    old["metadata"]["annotations"][f"{PREFIX}/status"] = OLD_STATUS
    kubectl.apply(old)
    kubectl.apply(_pod("plain", namespace, None))
    kubectl.run("label", "namespace", namespace, f"{PREFIX}/inject=e2e-nope", "--overwrite")


def _where(metric: dict[str, str]) -> tuple[str, str, str]:
    """A table row's namespace, template (Prometheus drops an empty label) and state."""
    return metric["namespace"], metric.get("template", ""), metric["state"]


def _active(server: Prometheus, namespace: str) -> dict[tuple[str, str], str]:
    """(alert, template) -> state of the audit's alerts about `namespace` (the AuditDown
    alert, which has no template, under "")."""
    return {
        (a["labels"]["alertname"], a["labels"].get("template", "")): a["state"]
        for a in server.api("alerts")["alerts"]
        if a["labels"].get("namespace") == namespace or a["labels"]["alertname"].endswith("Down")
    }


def test_a_real_prometheus_fires_and_clears_the_audit_s_alerts(
    cluster: Cluster, helm: Helm, tmp_path: Path
) -> None:
    """The real audit process on the real API server, scraped by a real Prometheus as the
    audit's ServiceMonitor has it scraped (its job, honorLabels), evaluating the chart's audit
    alert group: pods created without their sidecar, one outdated, a namespace label naming no
    profile — each alert pending, then firing with the namespace and template; the dashboard's
    audit panels show the same; fixed, they clear; the audit stopped, AuditDown."""
    binaries = tools()
    monitoring = Monitoring(render(helm, MONITORING).docs)
    rules = _shortened_audit_rules(monitoring, tmp_path / "rules.yaml")
    panels = {
        where: query
        for where, query in monitoring.panel_queries.items()
        if "sidecar_injector_audit_" in query
    }
    assert len(panels) == 3, panels

    release = cluster.release
    templates = release.templates_dir(tmp_path / "templates")
    kubectl = cluster.kubectl
    with kubectl.scratch_namespace("e2e-alerts") as namespace, audit(
        tmp_path, cluster.config.kubeconfig, f"--templates-dir={templates}",
        *_settings(release),
    ) as found:  # fmt: skip
        target = found.url.removeprefix("http://")
        scrape = monitoring.audit_scrape_config(target, interval="1s")
        with prometheus(binaries, tmp_path, [scrape], [rules]) as server:
            synced = f"sidecar_injector_audit_synced{{{monitoring.audit_selector}}}"
            server.wait_for("the audit scraped, in sync", lambda: server.values(synced) == [1])
            # Before the first scrape the audit is absent: AuditDown (`for` shortened) may
            # have fired; in sync, every alert is quiet.
            server.wait_for("no alert", lambda: not _active(server, namespace), WAIT)

            _create_problems(kubectl, namespace)
            states = {
                ("SidecarInjectorPodsMissingSidecar", "log-shipper"),
                ("SidecarInjectorPodsOutdated", "log-shipper"),
                ("SidecarInjectorPodsBlocked", ""),
            }
            seen: set[str] = set()

            def reached(state: str) -> bool:
                now = _active(server, namespace)
                seen.update(f"{key[0]}={value}" for key, value in now.items())
                return now == dict.fromkeys(states, state)

            server.wait_for(
                "the pod alerts firing", lambda: reached("firing"), WAIT, lambda: str(seen)
            )
            firing = {
                (a["labels"]["alertname"], a["labels"].get("template", "")): float(a["value"])
                for a in server.api("alerts")["alerts"]
                if a["labels"].get("namespace") == namespace
            }
            by_state = {
                s["metric"]["state"]: float(s["value"][1])
                for s in server.query(panels["Audited pods by state / A"])
            }
            table = {
                _where(s["metric"]): float(s["value"][1])
                for s in server.query(
                    panels["Missed or blocked pods by namespace and template / A"]
                )
            }
            in_sync = server.values(panels["Audit in sync / A"])

            # Fixed: the label taken off, the pods recreated (here: deleted).
            kubectl.run("label", "namespace", namespace, f"{PREFIX}/inject-")
            kubectl.run("delete", "pod", "web-1", "web-2", "old", "plain",
                        f"--namespace={namespace}", "--wait=false")  # fmt: skip
            server.wait_for("the pod alerts cleared", lambda: not _active(server, namespace), WAIT)
            zeros = server.query(
                f"sidecar_injector_audit_pods{{{monitoring.audit_pods_selector},"
                f'namespace="{namespace}"}}'
            )

            assert stop(found) == 0
            server.wait_for(
                "AuditDown firing once the audit is stopped",
                lambda: any(
                    a["labels"]["alertname"] == "SidecarInjectorAuditDown"
                    and a["state"] == "firing"
                    for a in server.api("alerts")["alerts"]
                ),
                WAIT,
            )
            health = {
                r["name"]: (r["health"], r.get("lastError", ""))
                for g in server.api("rules")["groups"]
                for r in g["rules"]
            }
    assert firing == {
        ("SidecarInjectorPodsMissingSidecar", "log-shipper"): 2.0,
        ("SidecarInjectorPodsOutdated", "log-shipper"): 1.0,
        ("SidecarInjectorPodsBlocked", ""): 1.0,
    }
    assert "SidecarInjectorAuditDown=pending" not in seen, "in sync: AuditDown stayed quiet"
    for alert, _ in states:
        assert {f"{alert}=pending", f"{alert}=firing"} <= seen, f"{alert}: pending first ({seen})"
    assert by_state.get("missed", 0) >= 2 and by_state.get("outdated", 0) >= 1, by_state
    assert {k: v for k, v in table.items() if k[0] == namespace} == {
        (namespace, "log-shipper", "missed"): 2.0,
        (namespace, "", "blocked"): 1.0,
    }
    assert in_sync == [1.0]
    assert zeros and {float(s["value"][1]) for s in zeros} == {0.0}, "the series stay, at 0"
    assert health == dict.fromkeys(AUDIT_ALERTS, ("ok", ""))
