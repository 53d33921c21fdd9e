"""The real promtool for the monitoring tests, and the chart's monitoring objects.

The binaries come from scripts/fetch_prometheus.py (PATH, else Debian's package unpacked into
.cache/)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helm import REPO_ROOT, Helm, Manifest, only

FETCH_PROMETHEUS = REPO_ROOT / "scripts" / "fetch_prometheus.py"
RATE_INTERVAL = "1m"
"""What the queries' $__rate_interval stands for here: longer than a test run, so every window
holds the samples from before the traffic."""
MONITORING = {
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}
"""Values that render every monitoring object, with the default thresholds."""
SELECTOR = re.compile(r"\b(up|sidecar_injector_\w+)\{([^}]*)\}")
"""A vector selector of the webhook's metrics in a query (each has label matchers)."""


@dataclass(frozen=True)
class Tools:
    prometheus: Path
    promtool: Path


def tools() -> Tools:
    """The binaries, or a skip saying why they cannot be had here."""
    result = subprocess.run(
        [sys.executable, str(FETCH_PROMETHEUS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.skip(f"no Prometheus binaries: {result.stderr.strip()}")
    directory = Path(result.stdout.strip())
    return Tools(directory / "prometheus", directory / "promtool")


# --- The chart's monitoring objects ---


@dataclass(frozen=True)
class Monitoring:
    """What the chart renders for Prometheus and Grafana."""

    docs: list[Manifest]

    @classmethod
    def render(cls, helm: Helm, values: Mapping[str, Any] | None = None) -> Monitoring:
        return cls(helm.template(values or MONITORING))

    @property
    def rule(self) -> Manifest:
        return only(self.docs, "PrometheusRule")

    @property
    def alerts(self) -> dict[str, Manifest]:
        """Alert name -> rule, over every group."""
        return {
            rule["alert"]: rule
            for group in self.rule["spec"]["groups"]
            for rule in group["rules"]
            if "alert" in rule
        }

    @property
    def dashboard_configmap(self) -> Manifest:
        [found] = [
            d
            for d in self.docs
            if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
        ]
        return found

    @property
    def dashboard(self) -> dict[str, Any]:
        [text] = self.dashboard_configmap["data"].values()
        loaded: dict[str, Any] = json.loads(text)
        return loaded

    @property
    def panels(self) -> list[dict[str, Any]]:
        """Every panel, those inside rows included."""
        found = []
        for panel in self.dashboard["panels"]:
            found.append(panel)
            found.extend(panel.get("panels", []))
        return found

    @property
    def panel_queries(self) -> dict[str, str]:
        """'<panel title> / <refId>' -> PromQL, Grafana's variables replaced as Grafana would."""
        return {
            f"{panel['title']} / {target['refId']}": target["expr"].replace(
                "$__rate_interval", RATE_INTERVAL
            )
            for panel in self.panels
            for target in panel.get("targets", [])
        }

    @property
    def endpoint(self) -> Manifest:
        [endpoint] = only(self.docs, "ServiceMonitor")["spec"]["endpoints"]
        found: Manifest = endpoint
        return found

    @property
    def job(self) -> str:
        """The job label the ServiceMonitor gives its targets (its relabeling)."""
        [job] = [
            r["replacement"] for r in self.endpoint["relabelings"] if r["targetLabel"] == "job"
        ]
        assert isinstance(job, str)
        return job

    @property
    def namespace(self) -> str:
        """The namespace label of the targets: the webhook Pods' namespace."""
        [namespace] = only(self.docs, "ServiceMonitor")["spec"]["namespaceSelector"]["matchNames"]
        assert isinstance(namespace, str)
        return namespace

    @property
    def matchers(self) -> str:
        """The label matchers of this release's metrics."""
        return f'job="{self.job}",namespace="{self.namespace}"'


def selectors(query: str) -> list[str]:
    """The webhook's vector selectors in a PromQL query, as written."""
    return [match[0] for match in SELECTOR.finditer(query)]


def rule_file(monitoring: Monitoring, path: Path) -> Path:
    """The PrometheusRule's spec written as a Prometheus rule file."""
    path.write_text(yaml.safe_dump(monitoring.rule["spec"], sort_keys=False))
    return path


def promtool(tools: Tools, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools.promtool), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
