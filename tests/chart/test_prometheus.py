"""A real Prometheus scraping the real service under real admission traffic, configured from the
chart's own ServiceMonitor (its job relabeling), PrometheusRule (loaded as a rule file) and
dashboard: every dashboard query and every alert expression is evaluated through the HTTP API,
without error, with data where traffic was sent. Next to it the real `sidecar-injector audit`,
scraped as the audit's ServiceMonitor has it scraped, with a kubeconfig whose API server does
not answer: alive, never in sync and unable to keep the last-good ConfigMap, so
SidecarInjectorAuditDown and SidecarInjectorLastGoodNotKept become pending (its pod gauges,
which need an API server, are shown firing and clearing in e2e/test_audit.py). Failures are made for real — denied requests,
a broken template, a certificate and key that do not match, a certificate three days from
expiry, at last the service stopped — and their alerts become active; the one left healthy
(latency) stays quiet.

The processes run on 127.0.0.1 with free ports, Prometheus scrapes and evaluates every second,
every wait is bounded, and both are always stopped."""

from __future__ import annotations

import datetime
import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trustme

from injector.service.sample import review
from tests.service.process import SERVICE_NAME, Service, running
from tests.service.support import EXAMPLES, KubeletVolume, Mounts, secret_files, trusting
from tests.test_loader import GOOD
from tests.test_validation import edit, namespace

from .helm import Helm
from .prometheus import (
    MONITORING,
    Monitoring,
    Prometheus,
    QueryError,
    prometheus,
    rule_file,
    selectors,
    tools,
)
from .test_monitoring import ALERTS, AUDIT_ALERTS

EXPIRES_IN = datetime.timedelta(days=3)
"""The served certificate's life left: inside the default certExpiryDays (7)."""
REQUESTS = {"injected": 6, "denied": 2, "skipped": 3, "error": 1}
"""Admission traffic by outcome: 3 of 12 denied or error, above the default 10 %."""
BROKEN_TEMPLATE = "containers: [\n"
INDUCED = {
    "SidecarInjectorRequestsFailing": "pending",  # for: 10m
    "SidecarInjectorTemplateLoadErrors": "pending",  # for: 5m
    "SidecarInjectorTemplatesReloadFailing": "firing",
    "SidecarInjectorCertificateReloadFailing": "firing",
    "SidecarInjectorCertificateExpiring": "firing",
    "SidecarInjectorAuditDown": "pending",  # for: 10m
    "SidecarInjectorLastGoodNotKept": "pending",  # for: 15m
}
"""The alerts the failures made here activate, and the state they reach at once."""
HEALTHY = {"SidecarInjectorDown", "SidecarInjectorSlowAdmissions"}
"""Quiet while the service runs: it is up, and answers in milliseconds."""
WAIT = 20.0
AUDIT = (str(Path(sys.executable).parent / "sidecar-injector"), "audit")
"""The console script, as the chart's audit container runs it."""
UNREACHABLE = {
    "apiVersion": "v1", "kind": "Config", "current-context": "x",
    "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "x", "user": {"token": "t"}}],
    "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
}  # fmt: skip
"""A kubeconfig whose API server refuses every connection."""

Result = list[dict[str, Any]] | str
"""A query's vector, or Prometheus's error."""


@contextmanager
def unsynced_audit(monitoring: Monitoring, root: Path, templates: Path) -> Iterator[int]:
    """The audit process with the chart's audit args on a free port, the paths into this
    machine's directories, its API server unreachable; its metrics port. It must exit 0 on
    SIGTERM."""
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(json.dumps(UNREACHABLE))
    (root / "last-good").mkdir()
    local = {
        "--templates-dir": str(templates),
        "--host": "127.0.0.1",
        "--metrics-port": "0",
        "--last-good-dir": str(root / "last-good"),
    }
    chart = monitoring.audit_container["args"]
    assert chart[0] == "audit"
    args = [
        f"{flag}={local[flag]}" if flag in local else arg
        for arg in chart[1:]
        for flag in [arg.partition("=")[0]]
    ]
    found = Service([*args, f"--kubeconfig={kubeconfig}"], command=AUDIT)
    try:
        line = found.stdout.wait_for(lambda text: '"event":"listening"' in text)
        assert line is not None, f"the audit did not start:\n{found.stdout.text()}"
        found.metrics_port = json.loads(line)["metrics_port"]
        yield found.metrics_port
    finally:
        code = found.stop()
    assert code == 0, f"the audit exited {code}:\n{found.stdout.text()}{found.stderr.text()}"


@dataclass
class Observed:
    """What Prometheus answered, gathered while the service ran and just after it stopped."""

    monitoring: Monitoring
    panels: dict[str, Result]
    alerts: dict[str, Result]
    series: dict[str, Result]
    """count(<selector>) for every selector of every panel and alert."""
    states: dict[str, str]
    rules: list[dict[str, Any]]
    down_after_stop: Result


def evaluate(server: Prometheus, query: str) -> Result:
    try:
        return server.query(query)
    except QueryError as exc:
        return str(exc)


def sample_values(result: Result) -> list[float]:
    assert not isinstance(result, str), result
    return [float(sample["value"][1]) for sample in result]


def active(server: Prometheus) -> dict[str, str]:
    """Alert name -> state (pending or firing) of the alerts Prometheus has active."""
    return {a["labels"]["alertname"]: a["state"] for a in server.api("alerts")["alerts"]}


def post(
    client: httpx.Client, port: int, path: str, body: bytes, content_type: str
) -> httpx.Response:
    return client.post(
        f"https://127.0.0.1:{port}{path}",
        content=body,
        headers={"content-type": content_type},
        extensions={"sni_hostname": SERVICE_NAME},
    )


def send_traffic(service: Service, ca: trustme.CA) -> None:
    """REQUESTS to /mutate over TLS, each answer checked, and two templates ConfigMap edits to
    /validate: one allowed, one denied, and a namespace label with a typo (denied)."""
    asks = {"injected": "log-shipper", "denied": "no-such-template", "skipped": ""}
    with httpx.Client(verify=trusting(ca), timeout=10) as client:
        for outcome, count in REQUESTS.items():
            for _ in range(count):
                document = review(asks.get(outcome, "log-shipper"), uid=str(uuid.uuid4()))
                content_type = "text/plain" if outcome == "error" else "application/json"
                answer = post(client, service.port, "/mutate", orjson.dumps(document), content_type)
                if outcome == "error":
                    assert answer.status_code == 415, answer.text
                    continue
                assert answer.status_code == 200, answer.text
                response = answer.json()["response"]
                assert response["allowed"] is (outcome != "denied"), response
                assert ("patch" in response) is (outcome == "injected"), response
        for data, allowed in (({"good.yaml": GOOD}, True), ({"t.yaml": BROKEN_TEMPLATE}, False)):
            document = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
            document["request"] = edit(data, old={"good.yaml": GOOD})
            answer = post(
                client, service.port, "/validate", orjson.dumps(document), "application/json"
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["response"]["allowed"] is allowed
        # A namespace labeled with a typo: denied, counted under kind="namespace".
        document = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
        document["request"] = namespace({"sidecar-injector.io/inject": "mehs"}, old={})
        answer = post(client, service.port, "/validate", orjson.dumps(document), "application/json")
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"]["allowed"] is False


def wait_for(what: str, check: Callable[[], bool], service: Service) -> None:
    """Poll the service until `check` holds; fail with its log if it does not in time."""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline or service.proc.poll() is not None:
            raise AssertionError(f"{what} did not happen within {WAIT}s:\n{service.stdout.text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def observed(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Observed:
    binaries = tools()
    root = tmp_path_factory.mktemp("monitoring")
    monitoring = Monitoring.render(helm, MONITORING)
    selector = monitoring.matchers

    ca = trustme.CA()
    mounts = Mounts(KubeletVolume(root / "templates"), KubeletVolume(root / "tls"), ca)
    examples = {path.name: path.read_text() for path in sorted(EXAMPLES.glob("*.yaml"))}
    mounts.templates.write(examples)
    expires = datetime.datetime.now(datetime.UTC) + EXPIRES_IN
    leaf = ca.issue_cert(SERVICE_NAME, not_after=expires)
    mounts.secret.write(secret_files(leaf))

    with (
        running(mounts.args()) as service,
        unsynced_audit(monitoring, root, mounts.templates.root) as audit_port,
    ):
        target = f"127.0.0.1:{service.metrics_port}"
        scrape = monitoring.scrape_config(target, interval="1s")
        audit_scrape = monitoring.audit_scrape_config(f"127.0.0.1:{audit_port}", interval="1s")
        rules = rule_file(monitoring, root / "rules.yaml")
        with prometheus(binaries, root, [scrape, audit_scrape], [rules]) as server:
            up = f"up{{{selector}}}"
            server.wait_for("a first scrape of the service", lambda: server.values(up) == [1.0])
            audit_up = f"up{{{monitoring.audit_selector}}}"
            server.wait_for("a first scrape of the audit", lambda: server.values(audit_up) == [1])

            send_traffic(service, ca)
            mounts.templates.write({**examples, "broken.yaml": BROKEN_TEMPLATE})
            other = trustme.CA().issue_cert(SERVICE_NAME)
            mounts.secret.write(
                {"tls.crt": secret_files(other)["tls.crt"], "tls.key": leaf.private_key_pem.bytes()}
            )

            def counted(metric: str, result: str) -> float | None:
                return service.metric(f"sidecar_injector_{metric}_total", result=result)

            wait_for(
                "both reloads failing",
                lambda: (
                    counted("config_reloads", "failure") == 1
                    and counted("tls_reloads", "failure") == 1
                ),
                service,
            )
            sent = sum(REQUESTS.values())
            scraped = {
                f"sum(sidecar_injector_admission_requests_total{{{selector}}})": [float(sent)],
                f'sum(sidecar_injector_config_validations_total{{{selector},kind="configmap"}})': [
                    2.0
                ],
                f'sidecar_injector_config_validations_total{{{selector},kind="namespace",result="denied"}}': [
                    1.0
                ],
                f'sidecar_injector_config_reloads_total{{{selector},result="failure"}}': [1.0],
                f'sidecar_injector_tls_reloads_total{{{selector},result="failure"}}': [1.0],
            }
            server.wait_for(
                "a scrape of the traffic and of the failed reloads",
                lambda: all(server.values(q) == v for q, v in scraped.items()),
            )
            server.wait_for(
                "the alerts of the failures made active",
                lambda: INDUCED.items() <= active(server).items(),
            )

            panels = {w: evaluate(server, q) for w, q in monitoring.panel_queries.items()}
            alerts = {n: evaluate(server, r["expr"]) for n, r in monitoring.alerts.items()}
            every = [
                *monitoring.panel_queries.values(),
                *(r["expr"] for r in monitoring.alerts.values()),
            ]
            series = {s: evaluate(server, f"count({s})") for q in every for s in selectors(q)}
            states = active(server)
            groups: list[dict[str, Any]] = server.api("rules")["groups"]

            assert service.stop() == 0
            server.wait_for(
                "a failed scrape of the stopped service", lambda: server.values(up) == [0.0]
            )
            down = evaluate(server, monitoring.alerts["SidecarInjectorDown"]["expr"])
    return Observed(monitoring, panels, alerts, series, states, groups, down)


def needs_pods(query: str) -> bool:
    """Whether a query reads the audit's pod gauges: exported only once the audit has listed
    pods from an API server (e2e/test_audit.py shows them with a real one)."""
    return "sidecar_injector_audit_pods" in query


def test_every_dashboard_query_has_data(observed: Observed) -> None:
    """Every panel's queries evaluate, with data (the audit's pod panels aside: no API server
    here); those over counters (rates, increases, the latency histogram) show the traffic that
    was sent."""
    for where, result in observed.panels.items():
        assert not isinstance(result, str), f"{where}: {result}"
        query = observed.monitoring.panel_queries[where]
        if needs_pods(query):
            assert result == [], f"{where}: {result}"
            continue
        assert result, f"{where}: no data"
        if "rate(" in query or "increase(" in query:
            values = [v for v in sample_values(result) if not math.isnan(v)]
            assert any(v > 0 for v in values), f"{where}: no traffic in {values}"
    assert len(observed.panels) == len(observed.monitoring.panel_queries) >= 18
    assert sum(needs_pods(q) for q in observed.monitoring.panel_queries.values()) == 2


def test_every_alert_expression_evaluates_on_the_real_series(observed: Observed) -> None:
    """Every alert evaluates without error, and every selector in every alert and panel
    matches series of the real service and the real audit, as scraped through their
    ServiceMonitors' jobs (the audit's pod gauges aside: no API server here)."""
    assert set(observed.alerts) == set(ALERTS)
    for name, result in observed.alerts.items():
        assert not isinstance(result, str), f"{name}: {result}"
    for selector, count in observed.series.items():
        if needs_pods(selector):
            assert sample_values(count) == [], f"{selector}: {count}"
            continue
        assert sample_values(count) and sample_values(count)[0] > 0, f"{selector}: no series"
    assert any(needs_pods(s) for s in observed.series)


def test_real_failures_activate_their_alerts_and_healthy_ones_stay_quiet(
    observed: Observed,
) -> None:
    for name in INDUCED:
        assert observed.alerts[name], f"{name}: the failure made here does not show"
    for name in HEALTHY:
        assert observed.alerts[name] == [], f"{name} while healthy: {observed.alerts[name]}"
    assert observed.states == INDUCED
    [share] = sample_values(observed.alerts["SidecarInjectorRequestsFailing"])
    failed = REQUESTS["denied"] + REQUESTS["error"]
    assert share == pytest.approx(failed / sum(REQUESTS.values()))
    [left] = sample_values(observed.alerts["SidecarInjectorCertificateExpiring"])
    assert left == pytest.approx(EXPIRES_IN.total_seconds(), abs=120)
    [broken] = sample_values(observed.alerts["SidecarInjectorTemplateLoadErrors"])
    assert broken == 1
    # The audit alive but never in sync, and unable to keep the last-good ConfigMap: its own
    # alerts, on its job and namespace; no pod alert without pods.
    monitoring = observed.monitoring
    own = {"SidecarInjectorAuditDown", "SidecarInjectorLastGoodNotKept"}
    for name in own:
        result = observed.alerts[name]
        assert not isinstance(result, str), result
        [down] = result
        assert down["metric"] == {"job": monitoring.audit_job, "namespace": monitoring.namespace}
        assert sample_values([down]) == [0.0]
    for name in AUDIT_ALERTS - own:
        assert observed.alerts[name] == [], name


def test_prometheus_loads_and_evaluates_every_rule(observed: Observed) -> None:
    rules = [rule for group in observed.rules for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == set(ALERTS)
    for rule in rules:
        assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), rule
        assert rule["labels"]["severity"] == ALERTS[rule["name"]]


def test_a_stopped_service_makes_down_fire(observed: Observed) -> None:
    result = observed.down_after_stop
    assert not isinstance(result, str), result
    job, namespace = observed.monitoring.job, observed.monitoring.namespace
    assert [sample["metric"] for sample in result] == [{"job": job, "namespace": namespace}]
