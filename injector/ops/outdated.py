"""`outdated`: every opted-in pod that needs something — an older version of a template
(outdated), a template that is gone (removed), a template the webhook would inject now but the
pod lacks (missed), or a refusal waiting for its next restart (blocked) — judged by
`injector.fleet`, grouped by the workload that would replace the pods, with the fix. Pods and
namespaces are read as metadata only, in pages; what the webhook's replicas serve is read
through the API server's proxy, so a restart is never suggested before they serve the
ConfigMap's version."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from lightkube import Client
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Namespace, Pod

from injector.fleet import STATES, Finding, Fleet, PodAudit, PodMeta
from injector.ops.kube import AccessError, list_metadata, proxy_get, reading
from injector.types import JSON

Owner = tuple[str, str]
"""The kind and name of an object's controller."""
ALL_NAMESPACES = "*"
RESTARTABLE = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
PARENTS = {"ReplicaSet": "Deployment", "Job": "CronJob"}
"""Owners whose own controller is the workload to restart."""
WAITED = frozenset({"outdated", "missed"})
"""States a restart fixes only once the webhook serves the templates' current version."""


@dataclass(frozen=True)
class PodRecord:
    """What `outdated` keeps of one pod."""

    namespace: str
    name: str
    owner: Owner | None
    audit: PodAudit


@dataclass(frozen=True)
class Served:
    """What the webhook's replicas serve: template digests per replica, or why that is
    unknown."""

    replicas: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    unknown: str | None = None
    down: str | None = None
    """The release namespace, when no webhook replica is ready: a restart then recreates the
    pods without their sidecars (failurePolicy Ignore), or its new pods are refused and the
    rollout stalls (Fail)."""

    def behind(self, current: Mapping[str, str]) -> dict[str, str]:
        """Templates some replica does not serve in the `current` version yet, each with what
        the replicas serve instead."""
        found: dict[str, str] = {}
        for template, digest in current.items():
            others = sorted(
                f"{pod}: {served.get(template, 'none')}"
                for pod, served in self.replicas.items()
                if served.get(template) != digest
            )
            if others:
                found[template] = f"the ConfigMap holds {digest}; " + ", ".join(others)
        return found


@dataclass
class Workload:
    """Pods that one command replaces, with their problems."""

    kind: str
    namespace: str
    name: str
    pods: dict[str, tuple[Finding, ...]] = field(default_factory=dict)

    @property
    def restart(self) -> str | None:
        """What replaces the pods with ones injected now; None when nothing but a change of
        their configuration is needed (only blocked)."""
        if not any(f.state != "blocked" for found in self.pods.values() for f in found):
            return None
        if self.kind in RESTARTABLE:
            return f"kubectl rollout restart {self.kind.lower()}/{self.name} -n {self.namespace}"
        if self.kind == "CronJob":
            return "none needed: the CronJob's next run gets the current version"
        return f"kubectl delete pod {' '.join(sorted(self.pods))} -n {self.namespace}"

    @property
    def first(self) -> list[str]:
        """What to change before the pods can be recreated: the webhook's own refusals."""
        return sorted(
            {f.reason for found in self.pods.values() for f in found if f.state == "blocked"}
        )

    def waits_for(self, behind: Mapping[str, str]) -> list[str]:
        """The templates this workload's restart must wait for."""
        return sorted(
            {
                f.template
                for found in self.pods.values()
                for f in found
                if f.state in WAITED and f.template is not None and f.template in behind
            }
        )

    def states(self) -> dict[str, int]:
        return {s: sum(any(f.state == s for f in p) for p in self.pods.values()) for s in STATES}


@dataclass
class Report:
    workloads: list[Workload] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    """Templates that fail to load now: their pods are not counted."""
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, pod, problem) for pods whose status annotation cannot be read."""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    """Pods per state (a pod with two states counts in both)."""
    scanned: int = 0
    skipped: int = 0
    """Pods not audited: skipped on purpose (no opt-in, opted out, excluded or disabled)."""
    served: Served = field(default_factory=Served)
    current: Mapping[str, str] = field(default_factory=dict)

    @property
    def problem_pods(self) -> int:
        return sum(len(w.pods) for w in self.workloads)

    @property
    def behind(self) -> dict[str, str]:
        return self.served.behind(self.current)

    def fix(self, workload: Workload) -> str:
        """One line: what to change first, then what to run (or wait for)."""
        parts = [f"first: {reason}" for reason in workload.first]
        restart = workload.restart
        waits = workload.waits_for(self.behind)
        if restart is not None and self.served.down is not None:
            parts.append(
                f"wait until a webhook replica is ready (kubectl get deployments -n "
                f"{self.served.down}; a restart now recreates the pods without their sidecars, "
                f"or its new pods are refused and it stalls), then: {restart}"
            )
        elif restart is not None and waits:
            parts.append(
                f"wait until the webhook serves the ConfigMap's {', '.join(waits)} (a restart "
                f"now recreates the old version), then: {restart}"
            )
        elif restart is not None:
            parts.append(f"then: {restart}" if parts else restart)
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        behind = self.behind
        return {
            "workloads": [
                {
                    "kind": w.kind,
                    "namespace": w.namespace,
                    "name": w.name,
                    "command": w.restart,
                    "first": w.first,
                    "wait": w.waits_for(behind),
                    "fix": self.fix(w),
                    "pods": [
                        {
                            "name": pod,
                            "templates": [
                                {
                                    "name": f.template,
                                    "state": f.state,
                                    "reason": f.reason,
                                    "digest": f.digest,
                                }
                                for f in found
                            ],
                        }
                        for pod, found in sorted(w.pods.items())
                    ],
                }
                for w in self.workloads
            ],
            "states": self.counts,
            "broken": self.broken,
            "errors": [{"namespace": n, "pod": p, "error": e} for n, p, e in self.errors],
            "served": {
                "known": self.served.unknown is None,
                "unknown": self.served.unknown,
                "down": self.served.down is not None,
                "replicas": {pod: dict(t) for pod, t in self.served.replicas.items()},
                "behind": behind,
            },
            "scanned": self.scanned,
            "skipped": self.skipped,
        }


def report(
    pods: Iterable[PodRecord],
    owners: Mapping[tuple[str, str, str], Owner],
    broken: Collection[str] = (),
    served: Served | None = None,
    current: Mapping[str, str] | None = None,
) -> Report:
    """Group the pods with a problem under their workload; `owners` maps (namespace, kind,
    name) of a ReplicaSet or Job to its own controller."""
    result = Report(broken=sorted(broken), served=served or Served(), current=dict(current or {}))
    workloads: dict[tuple[str, str, str], Workload] = {}
    for pod in pods:
        result.scanned += 1
        audit = pod.audit
        if audit.error is not None:
            result.errors.append((pod.namespace, pod.name, audit.error))
            continue
        if audit.skip is not None:
            result.skipped += 1
            continue
        for state in {f.state for f in audit.findings}:
            result.counts[state] += 1
        problems = audit.problems
        if not problems:
            continue
        kind, name = _workload(pod, owners)
        key = (pod.namespace, kind, name)
        workload = workloads.setdefault(key, Workload(kind, pod.namespace, name))
        workload.pods[pod.name] = problems
    result.workloads = [workloads[key] for key in sorted(workloads)]
    return result


def _workload(pod: PodRecord, owners: Mapping[tuple[str, str, str], Owner]) -> Owner:
    if pod.owner is None:
        return ("Pod", pod.name)
    kind, name = pod.owner
    return owners.get((pod.namespace, kind, name), pod.owner)


# --- reading the cluster ---


def scan(
    client: Client,
    namespace: str,
    fleet: Fleet,
    label_of: Callable[[str], str | None],
    sent: Callable[[str, Mapping[str, str]], bool],
) -> Iterator[PodRecord]:
    """Every pod of `namespace` (ALL_NAMESPACES: of all), read as metadata in pages and judged
    at once: only the verdict is kept. `label_of(namespace)` is that namespace's inject label;
    `sent(namespace, pod labels)` says whether the webhook's entries would send the pod at all
    (a pod never sent is not audited)."""
    where = "all namespaces" if namespace == ALL_NAMESPACES else f"namespace {namespace}"
    with reading(client, f"list pods in {where}"):
        for metadata in list_metadata(client, Pod, namespace):
            name = metadata.get("name")
            if not name:
                continue
            pod_namespace = metadata.get("namespace") or ""
            labels = metadata.get("labels") or {}
            owner = _controller(metadata)
            if not sent(pod_namespace, labels):
                yield PodRecord(pod_namespace, name, owner, PodAudit(skip="excluded_namespace"))
                continue
            audit = fleet.audit(PodMeta.of(metadata), label_of(pod_namespace))
            yield PodRecord(pod_namespace, name, owner, audit)


def namespace_labels(client: Client, namespace: str) -> dict[str, dict[str, str]]:
    """Namespace name → its labels, for one namespace or (ALL_NAMESPACES) all, as metadata."""
    if namespace != ALL_NAMESPACES:
        try:
            with reading(client, f"get namespace {namespace}"):
                found = client.get(Namespace, namespace)
        except AccessError as exc:
            if exc.code != 404:
                raise
            return {}
        return {namespace: dict(found.metadata.labels or {}) if found.metadata else {}}
    with reading(client, "list namespaces"):
        return {
            m["name"]: m.get("labels") or {}
            for m in list_metadata(client, Namespace)
            if m.get("name")
        }


def _controller(metadata: Mapping[str, JSON]) -> Owner | None:
    for owner in metadata.get("ownerReferences") or ():
        if owner.get("controller"):
            return (str(owner.get("kind")), str(owner.get("name")))
    return None


def parents(
    client: Client, namespace: str, kinds: Collection[str]
) -> dict[tuple[str, str, str], Owner]:
    """The controllers of the ReplicaSets and Jobs (those of `kinds`) in `namespace`."""
    found: dict[tuple[str, str, str], Owner] = {}
    for kind, resource in (("ReplicaSet", ReplicaSet), ("Job", Job)):
        if kind not in kinds:
            continue
        with reading(client, f"list {kind.lower()}s in {namespace}"):
            for metadata in list_metadata(client, resource, namespace):
                owner = _controller(metadata)
                if owner is not None and owner[0] == PARENTS[kind]:
                    key = (metadata.get("namespace") or "", kind, metadata.get("name") or "")
                    found[key] = owner
    return found


def served(
    client: Client, namespace: str, selector: Mapping[str, str], port: int, url_mode: bool
) -> Served:
    """What each ready webhook replica serves (`/debug/templates` on its metrics port, through
    the API server's pods/proxy), or why that cannot be known — never a guess."""
    if url_mode:
        return Served(
            unknown="the webhook is called at a URL (webhook.url), not through its pods: "
            "what it serves cannot be read through the API server"
        )
    try:
        with reading(client, f"list pods in namespace {namespace}"):
            replicas = [
                p.metadata.name
                for p in client.list(Pod, namespace=namespace, labels=dict(selector))
                if p.metadata and p.metadata.name and _ready(p)
            ]
    except AccessError as exc:
        return Served(unknown=str(exc))
    if not replicas:
        return Served(unknown=f"no ready webhook replica in namespace {namespace}", down=namespace)
    found: dict[str, dict[str, str]] = {}
    for pod in sorted(replicas):
        try:
            with reading(client, f"get pods/proxy {pod}:{port} in namespace {namespace}"):
                body = proxy_get(client, namespace, pod, port, "debug/templates")
            loaded = orjson.loads(body)
            found[pod] = {str(t["name"]): str(t["digest"]) for t in loaded["templates"]}
        except AccessError as exc:
            return Served(unknown=str(exc))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return Served(unknown=f"replica {pod}'s /debug/templates is not readable ({exc})")
    return Served(found)


def _ready(pod: Pod) -> bool:
    status = pod.status
    if status is None or pod.metadata is None or pod.metadata.deletionTimestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or ())
