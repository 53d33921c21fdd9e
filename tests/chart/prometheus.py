"""The real Prometheus and promtool for the monitoring tests, and the chart's monitoring objects.

The binaries come from scripts/fetch_prometheus.py (PATH, else Debian's package unpacked into
.cache/); a server runs on 127.0.0.1 with a free port and its own temporary storage, and is
always stopped."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.service.process import Lines, terminate

from .helm import REPO_ROOT, Helm, Manifest, component, only, webhook_object

FETCH_PROMETHEUS = REPO_ROOT / "scripts" / "fetch_prometheus.py"
START_TIMEOUT = 20.0
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
        [endpoint] = webhook_object(self.docs, "ServiceMonitor")["spec"]["endpoints"]
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
    def audit_job(self) -> str:
        """The job label the audit's ServiceMonitor gives its target."""
        [endpoint] = self.audit_monitor["spec"]["endpoints"]
        [job] = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
        assert isinstance(job, str)
        return job

    @property
    def namespace(self) -> str:
        """The namespace label of the targets: the webhook Pods' namespace."""
        [namespace] = webhook_object(self.docs, "ServiceMonitor")["spec"]["namespaceSelector"][
            "matchNames"
        ]
        assert isinstance(namespace, str)
        return namespace

    @property
    def matchers(self) -> str:
        """The label matchers of this release's metrics."""
        return f'job="{self.job}",namespace="{self.namespace}"'

    def scrape_config(self, target: str, interval: str) -> dict[str, Any]:
        """The scrape job the prometheus-operator makes of the ServiceMonitor, for one target
        standing for a webhook Pod: the operator's `namespace` label (the Pod's namespace),
        the endpoint's path, scheme and relabelings (the chart's `job`)."""
        meta = webhook_object(self.docs, "ServiceMonitor")["metadata"]
        return {
            "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/0",
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "metrics_path": self.endpoint["path"],
            "scheme": self.endpoint["scheme"],
            "static_configs": [{"targets": [target], "labels": {"namespace": self.namespace}}],
            "relabel_configs": [snake_keys(r) for r in self.endpoint.get("relabelings", [])],
        }

    @property
    def audit_pods_selector(self) -> str:
        """The label matcher of the audit's pod gauges: its job alone (their `namespace` is the
        audited pods')."""
        return f'job="{self.audit_job}"'

    @property
    def audit_selector(self) -> str:
        """The label matchers of the audit's own metrics: its job and the release namespace."""
        return f'job="{self.audit_job}",namespace="{self.namespace}"'

    @property
    def audit_container(self) -> Manifest:
        """The audit Deployment's container: its args are the process's command line."""
        deployment = only((d for d in self.docs if component(d) == "audit"), "Deployment")
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        found: Manifest = container
        return found

    @property
    def audit_monitor(self) -> Manifest:
        return only((d for d in self.docs if component(d) == "audit"), "ServiceMonitor")

    def audit_scrape_config(self, target: str, interval: str) -> dict[str, Any]:
        """The scrape job the prometheus-operator makes of the audit's ServiceMonitor, for one
        target standing for the audit Pod: as `scrape_config`, plus its `honorLabels` (the
        pod gauges keep the audited pods' `namespace`)."""
        meta = self.audit_monitor["metadata"]
        [endpoint] = self.audit_monitor["spec"]["endpoints"]
        [namespace] = self.audit_monitor["spec"]["namespaceSelector"]["matchNames"]
        return {
            "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/0",
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "metrics_path": endpoint["path"],
            "scheme": endpoint["scheme"],
            "honor_labels": endpoint.get("honorLabels", False),
            "static_configs": [{"targets": [target], "labels": {"namespace": namespace}}],
            "relabel_configs": [snake_keys(r) for r in endpoint.get("relabelings", [])],
        }


def snake_keys(relabeling: Mapping[str, Any]) -> dict[str, Any]:
    """A ServiceMonitor relabeling (camelCase) as a Prometheus relabel_config."""
    return {
        re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower(): value for key, value in relabeling.items()
    }


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


# --- A running server ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class QueryError(AssertionError):
    """Prometheus answered a query with an error."""


@dataclass
class Prometheus:
    """One `prometheus` process on 127.0.0.1, and its HTTP API."""

    proc: subprocess.Popen[bytes]
    url: str
    output: Lines

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise QueryError(f"{path} {params}: {answer.status_code} {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's vector (a scalar result is a one-element vector)."""
        data = self.api("query", query=promql)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        assert data["resultType"] == "vector", f"{promql}: {data['resultType']}"
        return result

    def values(self, promql: str) -> list[float]:
        return [float(sample["value"][1]) for sample in self.query(promql)]

    def wait_for(
        self,
        what: str,
        check: Callable[[], bool],
        timeout: float = START_TIMEOUT,
        seen: Callable[[], str] | None = None,
    ) -> None:
        """Poll `check` until it holds; fail saying `what` did not happen in time (and what
        `seen` says was seen instead)."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                instead = f" (seen: {seen()})" if seen is not None else ""
                raise AssertionError(
                    f"Prometheus: {what} did not happen within {timeout}s{instead}:\n"
                    f"{self.output.text()}"
                )
            time.sleep(0.2)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.proc, timeout)
        self.output.join()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@contextmanager
def prometheus(
    tools: Tools,
    root: Path,
    scrape_configs: Sequence[Mapping[str, Any]],
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
) -> Iterator[Prometheus]:
    """A ready server scraping and evaluating every `interval`, stopped whatever happens."""
    config = root / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "rule_files": [str(path) for path in rule_files],
                "scrape_configs": list(scrape_configs),
            }
        )
    )
    for _attempt in range(3):
        server = _start(tools, root, config)
        try:
            server.wait_for("ready", server.ready)
        except AssertionError:
            server.stop()
            if "address already in use" in server.output.text():
                continue  # another process took the free port first: take another one
            raise
        try:
            yield server
        finally:
            server.stop()
        return
    raise AssertionError("Prometheus found no free port in three attempts")


def _start(tools: Tools, root: Path, config: Path) -> Prometheus:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(tools.prometheus),
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    return Prometheus(proc, f"http://127.0.0.1:{port}", Lines(proc.stderr))
