"""The chart's PrometheusRule and Grafana dashboard: their shape, their queries against the
service's real metric names and the ServiceMonitor's job, `promtool check rules`, and
`promtool test rules` (alerts_test.yaml) in which every alert fires on a synthetic failure and
stays quiet on healthy series."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from lightkube import Client
from prometheus_client import CollectorRegistry

from injector.audit.process import start
from injector.policy import Settings
from injector.service.metrics import Metrics

from .helm import CI_VALUES, Helm, Manifest, kinds, webhook_object
from .prometheus import MONITORING, Monitoring, Tools, promtool, rule_file, selectors, tools

ALERTS_TEST = Path(__file__).with_name("alerts_test.yaml")
ALERTS = {
    "SidecarInjectorDown": "critical",
    "SidecarInjectorRequestsFailing": "warning",
    "SidecarInjectorTemplateLoadErrors": "warning",
    "SidecarInjectorTemplatesReloadFailing": "warning",
    "SidecarInjectorCertificateReloadFailing": "warning",
    "SidecarInjectorCertificateExpiring": "warning",
    "SidecarInjectorSlowAdmissions": "warning",
    "SidecarInjectorPodsMissingSidecar": "warning",
    "SidecarInjectorPodsBlocked": "warning",
    "SidecarInjectorPodsOutdated": "info",
    "SidecarInjectorAuditDown": "warning",
    "SidecarInjectorLastGoodNotKept": "warning",
}
AUDIT_ALERTS = {name for name in ALERTS if any(k in name for k in ("Pods", "Audit", "LastGood"))}
"""Rendered only with audit.enabled; they select the audit's job."""
PROM_DURATION = re.compile(
    r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$"
)
[CI_MONITORING] = [path for path in CI_VALUES if path.stem == "monitoring-values"]
VALUE_SETS = {"monitoring-defaults": MONITORING, "monitoring-values": None}
"""Every monitoring object with the default thresholds, and the ci/ set (other thresholds,
labels, the dashboard in another namespace)."""
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def render(helm: Helm, name: str) -> Monitoring:
    if name == "monitoring-values":
        return Monitoring(helm.template(values_files=[CI_MONITORING]))
    return Monitoring.render(helm, VALUE_SETS[name])


@pytest.fixture(scope="module")
def promtools() -> Tools:
    return tools()


def service_metric_names() -> set[str]:
    """The metric families the service exports (its own; `up` is Prometheus's)."""
    registry = CollectorRegistry()
    Metrics(registry)
    return {family.name for family in registry.collect()}


def audit_metric_names(directory: Path) -> set[str]:
    """The metric families only the audit exports (it exports the template metrics too)."""
    registry = start(cast(Client, None), Settings(), directory, last_good=("ns", "last-good"))[2]
    return {family.name for family in registry.collect()} - service_metric_names()


def family(sample_name: str) -> str:
    for suffix in SUFFIXES:
        if sample_name.endswith(suffix):
            return sample_name.removesuffix(suffix)
    return sample_name


def queries(monitoring: Monitoring) -> dict[str, str]:
    """Every alert expression and every dashboard query, by where it comes from."""
    alerts = {f"alert {name}": rule["expr"] for name, rule in monitoring.alerts.items()}
    panels = {f"panel {where}": query for where, query in monitoring.panel_queries.items()}
    return alerts | panels


def test_off_by_default(default_docs: list[Manifest]) -> None:
    assert "PrometheusRule" not in kinds(default_docs)
    assert not [d for d in default_docs if "grafana_dashboard" in d["metadata"]["labels"]]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_prometheus_rule_shape(helm: Helm, name: str) -> None:
    """kube-prometheus-stack's conventions: severity, summary and description on every alert;
    the operator's rule selector label from the values."""
    monitoring = render(helm, name)
    rule, service = monitoring.rule, webhook_object(monitoring.docs, "Service")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert rule["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert rule["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
    if name == "monitoring-values":
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert set(rule["spec"]) == {"groups"}
    for group in rule["spec"]["groups"]:
        assert set(group) == {"name", "rules"}
    assert {n: r["labels"]["severity"] for n, r in monitoring.alerts.items()} == ALERTS
    for alert, body in monitoring.alerts.items():
        assert set(body) <= {"alert", "expr", "for", "labels", "annotations"}, alert
        assert isinstance(body["expr"], str) and body["expr"].strip(), alert
        assert PROM_DURATION.match(body.get("for", "0")), alert
        assert set(body["labels"]) == {"severity"}, alert
        assert set(body["annotations"]) == {"summary", "description"}, alert
        assert all(text.strip() for text in body["annotations"].values()), alert


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_query_selects_the_service_monitor_job_and_real_metrics(
    helm: Helm, name: str, tmp_path: Path
) -> None:
    """Each selector of each alert and panel names a metric the service exports (or `up`) and
    the job and namespace the ServiceMonitor gives its targets."""
    monitoring = render(helm, name)
    job, namespace = monitoring.job, monitoring.namespace
    service = webhook_object(monitoring.docs, "Service")["metadata"]
    assert (job, namespace) == (service["name"], service["namespace"])
    audit_job = monitoring.audit_job
    exported = service_metric_names() | {"up"}
    audit = audit_metric_names(tmp_path)
    assert {"sidecar_injector_audit_pods", "sidecar_injector_audit_synced"} <= audit
    found = queries(monitoring)
    assert len(found) == len(ALERTS) + len(monitoring.panel_queries)
    for where, query in found.items():
        assert "$" not in query, f"{where}: a Grafana variable left in {query}"
        written = selectors(query)
        assert written, f"{where}: no selector of the webhook's metrics in {query}"
        for selector in written:
            metric, _, matchers = selector.partition("{")
            if family(metric) == "sidecar_injector_audit_pods":
                # The audited pods' own namespace label: the audit's job alone.
                assert f'job="{audit_job}"' in matchers, f"{where}: {selector}"
                assert "namespace=" not in matchers, f"{where}: {selector}"
                continue
            wanted = audit_job if family(metric) in audit else job
            assert family(metric) in exported | audit, f"{where}: {metric} is not exported"
            assert f'job="{wanted}"' in matchers and f'namespace="{namespace}"' in matchers, (
                f"{where}: {selector}"
            )


def test_audit_alerts_only_with_the_audit(helm: Helm) -> None:
    values = {**MONITORING, "audit": {"enabled": False}}
    assert set(Monitoring(helm.template(values)).alerts) == set(ALERTS) - AUDIT_ALERTS


def test_outdated_for_is_a_value(helm: Helm) -> None:
    alerts = render(helm, "monitoring-defaults").alerts
    assert alerts["SidecarInjectorPodsOutdated"]["for"] == "24h"
    assert alerts["SidecarInjectorPodsMissingSidecar"]["for"] == "10m"
    assert alerts["SidecarInjectorPodsBlocked"]["for"] == "10m"
    assert alerts["SidecarInjectorAuditDown"]["for"] == "10m"
    values = {
        "metrics": {
            **MONITORING["metrics"],
            "prometheusRule": {"enabled": True, "outdatedFor": "3d"},
        }
    }
    assert Monitoring(helm.template(values)).alerts["SidecarInjectorPodsOutdated"]["for"] == "3d"


def test_thresholds_are_values(helm: Helm) -> None:
    """The alerts' thresholds, and the dashboard's stat colours, follow the values."""
    values: dict[str, Any] = yaml.safe_load(CI_MONITORING.read_text())["metrics"]
    rule = values["prometheusRule"]
    alerts = render(helm, "monitoring-values").alerts
    assert alerts["SidecarInjectorRequestsFailing"]["expr"].endswith(f"> {rule['failureRatio']}")
    assert alerts["SidecarInjectorRequestsFailing"]["for"] == rule["failureRatioFor"]
    assert alerts["SidecarInjectorSlowAdmissions"]["expr"].endswith(
        f"> {rule['latencyP99Seconds']}"
    )
    assert alerts["SidecarInjectorSlowAdmissions"]["for"] == "10m"
    assert alerts["SidecarInjectorCertificateExpiring"]["expr"].endswith(
        f"< {rule['certExpiryDays']} * 86400"
    )
    steps = {
        step["value"]
        for panel in render(helm, "monitoring-values").panels
        for step in panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    }
    assert {
        rule["failureRatio"],
        rule["latencyP99Seconds"],
        rule["certExpiryDays"] * 86400,
    } <= steps
    defaults = render(helm, "monitoring-defaults").alerts
    assert defaults["SidecarInjectorRequestsFailing"]["expr"].endswith("> 0.1")
    assert defaults["SidecarInjectorRequestsFailing"]["for"] == "10m"
    assert defaults["SidecarInjectorSlowAdmissions"]["expr"].endswith("> 1")
    assert defaults["SidecarInjectorCertificateExpiring"]["expr"].endswith("< 7 * 86400")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_dashboard_configmap(helm: Helm, name: str) -> None:
    monitoring = render(helm, name)
    configmap, service = monitoring.dashboard_configmap, webhook_object(monitoring.docs, "Service")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["name"] == f"{service['metadata']['name']}-dashboard"
    if name == "monitoring-values":
        assert configmap["metadata"]["namespace"] == "monitoring"
        assert configmap["metadata"]["annotations"] == {"grafana_folder": "Platform"}
    else:
        assert configmap["metadata"]["namespace"] == service["metadata"]["namespace"]
    [key] = configmap["data"]
    assert key.endswith(".json")
    dashboard = monitoring.dashboard
    assert "__" not in configmap["data"][key].replace("$__rate_interval", ""), "a placeholder left"
    assert 0 < len(dashboard["uid"]) <= 40
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in monitoring.panels]
    assert len(ids) == len(set(ids))
    for panel in monitoring.panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for step in panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", []):
            assert step["value"] is None or isinstance(step["value"], int | float), panel["title"]


def test_dashboard_has_the_panels_the_readme_lists(helm: Helm) -> None:
    titles = {panel["title"] for panel in render(helm, "monitoring-defaults").panels}
    assert titles >= {
        "Requests by outcome",
        "Requests by outcome and reason",
        "Admission latency",
        "Injections by template",
        "Templates loaded and failing",
        "Reloads",
        "Edits judged",
        "Certificate expiry",
    }
    [latency] = [
        p for p in render(helm, "monitoring-defaults").panels if p["title"] == "Admission latency"
    ]
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p99"]


AUDIT_PANELS = {
    "Audit in sync",
    "Audited pods by state",
    "Missed or blocked pods by namespace and template",
}
"""The fleet audit's panels: rendered only with audit.enabled."""


def test_the_audit_s_panels_show_states_and_where_pods_are_missed_or_blocked(
    helm: Helm,
) -> None:
    """Pods by state, and a table of the namespaces and templates with missed or blocked pods,
    on the audit's real gauge and its job (the same selector as its alerts)."""
    monitoring = render(helm, "monitoring-defaults")
    panels = {p["title"]: p for p in monitoring.panels}
    assert set(panels) >= AUDIT_PANELS
    pods = f'sidecar_injector_audit_pods{{job="{monitoring.audit_job}"}}'
    [by_state] = panels["Audited pods by state"]["targets"]
    assert by_state["expr"] == f"sum by (state) ({pods})"
    assert by_state["legendFormat"] == "{{state}}"
    table = panels["Missed or blocked pods by namespace and template"]
    assert table["type"] == "table"
    [where] = table["targets"]
    assert where["expr"] == (
        "sum by (namespace, template, state) "
        f'({pods.removesuffix("}")},state=~"missed|blocked"}}) > 0'
    )
    assert (where["format"], where["instant"]) == ("table", True)
    [synced] = panels["Audit in sync"]["targets"]
    assert synced["expr"] == (
        f'min(sidecar_injector_audit_synced{{job="{monitoring.audit_job}",'
        f'namespace="{monitoring.namespace}"}})'
    )
    rows = sorted({(p["gridPos"]["y"], p["gridPos"]["x"]) for p in panels.values()})
    assert len(rows) == len(panels), "no two panels at the same place"


def test_without_the_audit_its_panels_are_left_out(helm: Helm) -> None:
    with_audit = render(helm, "monitoring-defaults")
    without = Monitoring.render(helm, {**MONITORING, "audit": {"enabled": False}})
    assert {p["title"] for p in without.panels} == {
        p["title"] for p in with_audit.panels
    } - AUDIT_PANELS
    assert (
        "sidecar_injector_audit" not in without.dashboard_configmap["data"]["sidecar-injector.json"]
    )
    kept = [p for p in with_audit.panels if p["title"] not in AUDIT_PANELS]
    assert without.panels == kept
    assert {k: v for k, v in without.dashboard.items() if k != "panels"} == {
        k: v for k, v in with_audit.dashboard.items() if k != "panels"
    }


def test_dashboards_of_two_releases_do_not_collide(helm: Helm) -> None:
    one = Monitoring(helm.template(MONITORING))
    other = Monitoring(helm.template(MONITORING, release="other", namespace="other"))
    assert one.dashboard["uid"] != other.dashboard["uid"]
    assert one.dashboard["title"] != other.dashboard["title"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_promtool_check_rules(helm: Helm, promtools: Tools, name: str, tmp_path: Path) -> None:
    rules = rule_file(render(helm, name), tmp_path / "rules.yaml")
    result = promtool(promtools, "check", "rules", str(rules), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_alert_unit_tests_cover_every_alert() -> None:
    """Each alert fires in some test and is checked quiet on the healthy series."""
    document: dict[str, Any] = yaml.safe_load(ALERTS_TEST.read_text())
    fired, quiet_when_healthy = set(), set()
    for case in document["tests"]:
        for check in case["alert_rule_test"]:
            assert check["alertname"] in ALERTS, check["alertname"]
            if check["exp_alerts"]:
                fired.add(check["alertname"])
            elif case["name"].startswith("healthy"):
                quiet_when_healthy.add(check["alertname"])
    assert fired == set(ALERTS)
    assert quiet_when_healthy == set(ALERTS)


def test_promtool_test_rules(helm: Helm, promtools: Tools, tmp_path: Path) -> None:
    """alerts_test.yaml against the rule rendered with the default thresholds."""
    rule_file(Monitoring.render(helm), tmp_path / "rules.yaml")
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    result = promtool(promtools, "test", "rules", ALERTS_TEST.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
