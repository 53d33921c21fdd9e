"""What the audit leaves out, on a real API server (any cluster mode; the audit runs here): the
webhook configuration's own namespaceSelector and objectSelector, given as flags. Pods they keep
from the webhook are never injected, so counting them as missed would page someone for nothing;
a namespace labeled into the selector, or a pod relabeled out of it, moves the counts."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from e2e.cluster import Cluster
from e2e.test_audit import Audit, _pod, _settings, audit

SELECTED = "audit-scope.e2e.sidecar-injector.io/on"
SKIP = "audit-scope.e2e.sidecar-injector.io/skip"


def test_pods_the_webhook_selectors_leave_out_are_not_audited(
    cluster: Cluster, tmp_path: Path
) -> None:
    kubectl = cluster.kubectl
    templates = cluster.release.templates_dir(tmp_path / "templates")
    namespaces = {"matchLabels": {SELECTED: "true"}}
    pods = {"matchExpressions": [{"key": SKIP, "operator": "DoesNotExist"}]}
    with (
        kubectl.scratch_namespace("e2e-scope-in") as inside,
        kubectl.scratch_namespace("e2e-scope-out") as outside,
    ):
        kubectl.run("label", "namespace", inside, f"{SELECTED}=true")
        with audit(
            tmp_path, cluster.config.kubeconfig, f"--templates-dir={templates}",
            *_settings(cluster.release), f"--namespace-selector={json.dumps(namespaces)}",
            f"--object-selector={json.dumps(pods)}",
        ) as found:  # fmt: skip
            # Stored without their sidecar, as if no webhook had answered.
            kubectl.apply(_pod("web", inside, "log-shipper"))
            skipped = _pod("skipped", inside, "log-shipper")
            skipped["metadata"]["labels"] = {SKIP: "yes"}
            kubectl.apply(skipped)
            kubectl.apply(_pod("web", outside, "log-shipper"))
            found.until({(inside, "log-shipper", "missed"): 1}, inside)
            assert not [k for k, v in found.pods().items() if k[0] == outside and v]
            # Labeled into the namespace selector: its pod now counts.
            kubectl.run("label", "namespace", outside, f"{SELECTED}=true")
            found.until({(outside, "log-shipper", "missed"): 1}, outside)
            # A namespace created now, outside the selector: no relist of every pod, and the
            # pods to come there are left out all the same.
            relists = _relists(found)
            with kubectl.scratch_namespace("e2e-scope-new") as new:
                kubectl.apply(_pod("web", new, "log-shipper"))
                kubectl.apply(_pod("web-2", inside, "log-shipper"))  # an event after it
                found.until({(inside, "log-shipper", "missed"): 2}, inside)
                assert not [k for k, v in found.pods().items() if k[0] == new and v]
                assert _relists(found) == relists
            kubectl.run("delete", "pod", "web-2", f"--namespace={inside}", "--wait=false")
            found.until({(inside, "log-shipper", "missed"): 1}, inside)
            # Relabeled out of the object selector: no longer counted.
            kubectl.run("label", "pod", "web", f"{SKIP}=yes", f"--namespace={outside}")
            found.until({}, outside)
            found.until({(inside, "log-shipper", "missed"): 1}, inside)
        assert "Traceback" not in found.log.read_text()


def _relists(found: Audit) -> float:
    families = text_string_to_metric_families(found.get("/metrics").text)
    return sum(
        s.value
        for family in families
        if family.name == "sidecar_injector_audit_watch_restarts"
        for s in family.samples
        if s.name.endswith("_total") and s.labels == {"kind": "pods", "reason": "relist"}
    )
