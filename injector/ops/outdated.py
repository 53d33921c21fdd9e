"""`outdated`: pods whose status annotation records a template version that the templates
ConfigMap no longer holds, grouped by the workload that would replace them, with the command
that does it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from lightkube import Client
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from injector.ops.kube import PAGE, reading

Owner = tuple[str, str]
"""The kind and name of an object's controller."""
ALL_NAMESPACES = "*"
RESTARTABLE = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
PARENTS = {"ReplicaSet": "Deployment", "Job": "CronJob"}
"""Owners whose own controller is the workload to restart."""


@dataclass(frozen=True)
class PodRecord:
    """What `outdated` needs of one pod."""

    namespace: str
    name: str
    owner: Owner | None
    status: str | None
    """The status annotation as written, or None when the pod has none."""


@dataclass(frozen=True)
class Stale:
    template: str
    reason: Literal["changed", "removed"]
    digest: str
    """The digest the pod got."""


@dataclass
class Workload:
    """Pods that one command replaces."""

    kind: str
    namespace: str
    name: str
    pods: dict[str, list[Stale]] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """What replaces the pods with ones injected from the current templates."""
        if self.kind in RESTARTABLE:
            return f"kubectl rollout restart {self.kind.lower()}/{self.name} -n {self.namespace}"
        if self.kind == "CronJob":
            return "none needed: the CronJob's next run gets the current version"
        return f"kubectl delete pod {' '.join(sorted(self.pods))} -n {self.namespace}"


@dataclass
class Report:
    workloads: list[Workload] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    """Templates that fail to load now: their pods are not called outdated."""
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, pod, problem) for pods whose status annotation cannot be read."""
    scanned: int = 0

    @property
    def outdated_pods(self) -> int:
        return sum(len(w.pods) for w in self.workloads)

    def to_json(self) -> dict[str, Any]:
        return {
            "workloads": [
                {
                    "kind": w.kind,
                    "namespace": w.namespace,
                    "name": w.name,
                    "command": w.command,
                    "pods": [
                        {
                            "name": pod,
                            "templates": [
                                {"name": s.template, "reason": s.reason, "digest": s.digest}
                                for s in stale
                            ],
                        }
                        for pod, stale in sorted(w.pods.items())
                    ],
                }
                for w in self.workloads
            ],
            "broken": self.broken,
            "errors": [{"namespace": n, "pod": p, "error": e} for n, p, e in self.errors],
            "scanned": self.scanned,
        }


def report(
    pods: Iterable[PodRecord],
    owners: Mapping[tuple[str, str, str], Owner],
    current: Mapping[str, str],
    broken: Collection[str],
) -> Report:
    """Group the pods running a template whose digest is no longer `current[name]` (or that
    is gone) under their workload. `owners` maps (namespace, kind, name) of a ReplicaSet or Job
    to its own controller; templates in `broken` count as neither current nor outdated."""
    result = Report(broken=sorted(broken))
    workloads: dict[tuple[str, str, str], Workload] = {}
    for pod in pods:
        result.scanned += 1
        if pod.status is None:
            continue
        found = stale(pod.status, current, broken)
        if isinstance(found, str):
            result.errors.append((pod.namespace, pod.name, found))
            continue
        if not found:
            continue
        kind, name = _workload(pod, owners)
        key = (pod.namespace, kind, name)
        workload = workloads.setdefault(key, Workload(kind, pod.namespace, name))
        workload.pods[pod.name] = found
    result.workloads = [workloads[key] for key in sorted(workloads)]
    return result


def stale(status: str, current: Mapping[str, str], broken: Collection[str]) -> list[Stale] | str:
    """The templates a pod's status annotation records whose digest is no longer
    `current[name]`, or that are gone (`broken` ones count as neither); why not, as a str,
    when the annotation cannot be read."""
    recorded = _recorded(status)
    if isinstance(recorded, str):
        return recorded
    return [
        Stale(name, "removed" if name not in current else "changed", digest)
        for name, digest in recorded
        if name not in broken and current.get(name) != digest
    ]


def _recorded(status: str) -> list[tuple[str, str]] | str:
    """(template, digest) pairs of a status annotation, or what is wrong with it."""
    try:
        record = orjson.loads(status)
        return [(str(t["name"]), str(t["digest"])) for t in record["templates"]]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return f"malformed status annotation ({type(exc).__name__}: {exc})"


def _workload(pod: PodRecord, owners: Mapping[tuple[str, str, str], Owner]) -> Owner:
    if pod.owner is None:
        return ("Pod", pod.name)
    kind, name = pod.owner
    return owners.get((pod.namespace, kind, name), pod.owner)


# --- reading the cluster ---


def scan(client: Client, namespace: str, status_key: str) -> Iterator[PodRecord]:
    """Every pod of `namespace` (ALL_NAMESPACES: of all), read in pages."""
    where = "all namespaces" if namespace == ALL_NAMESPACES else f"namespace {namespace}"
    with reading(client, f"list pods in {where}"):
        for pod in client.list(Pod, namespace=namespace, chunk_size=PAGE):
            metadata = pod.metadata
            if metadata is None or metadata.name is None:
                continue
            controller = next((o for o in metadata.ownerReferences or () if o.controller), None)
            yield PodRecord(
                metadata.namespace or "",
                metadata.name,
                (controller.kind, controller.name) if controller else None,
                (metadata.annotations or {}).get(status_key),
            )


def parents(
    client: Client, namespace: str, kinds: Collection[str]
) -> dict[tuple[str, str, str], Owner]:
    """The controllers of the ReplicaSets and Jobs (those of `kinds`) in `namespace`."""
    found: dict[tuple[str, str, str], Owner] = {}
    if "ReplicaSet" in kinds:
        with reading(client, f"list replicasets in {namespace}"):
            found.update(_controlled(client.list(ReplicaSet, namespace=namespace, chunk_size=PAGE)))
    if "Job" in kinds:
        with reading(client, f"list jobs in {namespace}"):
            found.update(_controlled(client.list(Job, namespace=namespace, chunk_size=PAGE)))
    return found


def _controlled(items: Iterable[ReplicaSet | Job]) -> Iterator[tuple[tuple[str, str, str], Owner]]:
    for item in items:
        metadata = item.metadata
        if metadata is None or metadata.name is None:
            continue
        kind = type(item).__name__
        for owner in metadata.ownerReferences or ():
            if owner.controller and owner.kind == PARENTS[kind]:
                yield (metadata.namespace or "", kind, metadata.name), (owner.kind, owner.name)
