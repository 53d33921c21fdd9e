"""The last-good ConfigMap as `sidecar-injector audit` keeps it, on a real API server (any
cluster mode; the audit runs here with the kubeconfig): every template that loads is written
with its text, a broken edit leaves the good version in place, a removed template goes, and an
audit restarted during the broken edit keeps it too. Without the ConfigMap it says so and goes
on. The node mode's restart of the webhook during a broken edit is in e2e/test_node.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from e2e.cluster import Cluster
from e2e.test_audit import Audit, audit, stop

DEADLINE = 30.0
GOOD = "containers:\n  - name: {name}\n    image: registry.example/{name}:{version}\n"
BROKEN = "containers:\n  - name: Not_A_Name\n    image: busybox\n"


def _until(check: Callable[[], Any], what: str, found: Audit) -> Any:
    deadline = time.monotonic() + DEADLINE
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what}: {found.log.read_text()[-3000:]}"
        time.sleep(0.2)
    return value


def _write(directory: Path, files: dict[str, str]) -> None:
    """Replace the directory's files (plain files: the audit notices by mtime and size)."""
    for old in directory.glob("*.yaml"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (directory / name).write_text(text)


def _metric(found: Audit, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(found.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_the_audit_keeps_the_last_good_version_of_each_template(
    cluster: Cluster, tmp_path: Path
) -> None:
    kubectl = cluster.kubectl
    templates = tmp_path / "templates"
    templates.mkdir()
    mounted = tmp_path / "last-good"  # the audit's own mount of it: empty, as on a first start
    mounted.mkdir()
    alpha, beta = GOOD.format(name="alpha", version=1), GOOD.format(name="beta", version=1)
    _write(templates, {"alpha.yaml": alpha, "beta.yaml": beta})

    def held() -> dict[str, str]:
        found = kubectl.get("configmap", "last-good", f"--namespace={namespace}")
        data: dict[str, str] = found.get("data") or {}
        return data

    with kubectl.scratch_namespace("e2e-lastgood") as namespace:
        flags = (
            f"--templates-dir={templates}",
            f"--last-good-dir={mounted}",
            f"--last-good-configmap={namespace}/last-good",
        )
        # Not there yet: said once with what it means, retried; the audit goes on.
        with audit(tmp_path, cluster.config.kubeconfig, *flags) as found:
            failed = _until(
                lambda: [e for e in found.lines() if e.get("event") == "last_good_update_failed"],
                "the failure line",
                found,
            )
            assert "not found: the chart creates it" in failed[0]["error"]
            assert "denies pods asking for it" in failed[0]["consequence"]
            assert _metric(found, "sidecar_injector_audit_last_good_synced") == 0
            assert _metric(found, "sidecar_injector_audit_last_good_writes_total", result="failure")
            assert stop(found) == 0

        kubectl.apply(
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "last-good", "namespace": namespace}}
        )  # fmt: skip
        with audit(tmp_path, cluster.config.kubeconfig, *flags) as found:
            _until(lambda: held() == {"alpha.yaml": alpha, "beta.yaml": beta}, "written", found)
            assert _metric(found, "sidecar_injector_audit_last_good_synced") == 1

            # alpha broken, beta changed: alpha's good text stays, beta's new one is written.
            beta = GOOD.format(name="beta", version=2)
            _write(templates, {"alpha.yaml": BROKEN, "beta.yaml": beta})
            _until(lambda: held() == {"alpha.yaml": alpha, "beta.yaml": beta}, "beta", found)
            # beta removed from the templates: removed here too.
            _write(templates, {"alpha.yaml": BROKEN})
            _until(lambda: held() == {"alpha.yaml": alpha}, "beta removed", found)
            updates = [e for e in found.lines() if e.get("event") == "last_good_updated"]
            assert [u["removed"] for u in updates][-1] == ["beta"]
            assert stop(found) == 0

        # Restarted while alpha is broken, first without the mount (no version of its own):
        # the ConfigMap's alpha stays; then with it, as the chart runs it: served from there.
        with audit(tmp_path, cluster.config.kubeconfig, *flags) as found:
            _until(lambda: _metric(found, "sidecar_injector_audit_last_good_synced"), "", found)
            assert held() == {"alpha.yaml": alpha}
            assert stop(found) == 0
        _write(mounted, {"alpha.yaml": alpha})
        with audit(tmp_path, cluster.config.kubeconfig, *flags) as found:
            _until(lambda: _metric(found, "sidecar_injector_audit_last_good_synced"), "", found)
            shown = json.loads(found.get("/debug/templates").text)
            assert [(t["name"], t["lastGood"]) for t in shown["templates"]] == [("alpha", True)]
            assert held() == {"alpha.yaml": alpha}
            assert stop(found) == 0
        assert "Traceback" not in found.log.read_text()
