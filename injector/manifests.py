"""Offline injection into manifests: Pods and the pod templates of workload objects."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import jsonpatch

from injector.catalog import Catalog
from injector.engine import decide
from injector.lists import Item, ListError, map_objects
from injector.policy import Settings
from injector.types import JSON, Obj

POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "DeploymentConfig": ("spec", "template"),  # OpenShift's apps.openshift.io/v1
}
"""Where each workload kind keeps the pod template its controller creates pods from."""

LISTS_HELP = (
    "also as items of a List (kind: List, what kubectl get -o yaml prints for several objects) "
    "or of a typed <Kind>List such as DeploymentList, Lists inside Lists included"
)


def objects_help() -> str:
    """What `inject -f` and `explain -f` act on, for their --help: derived from
    POD_TEMPLATE_PATHS, so the help never names fewer kinds than are handled."""
    *first, last = POD_TEMPLATE_PATHS
    return f"Pods and the pod templates of {', '.join(first)} and {last} objects, {LISTS_HELP}"


def pod_of(doc: Obj) -> Obj | None:
    """The pod a workload's controller creates from its pod template, named as controllers
    name theirs (`<owner>-<suffix>`: a generateName); None for a kind without a template."""
    path = POD_TEMPLATE_PATHS.get(str(doc.get("kind")))
    template = dig(doc, path) if path else None
    if not isinstance(template, dict):
        return None
    name = _mapping(doc.get("metadata")).get("name", "")
    metadata = {"generateName": f"{name}-", **_mapping(template.get("metadata"))}
    return {"metadata": metadata, "spec": template.get("spec")}


def _mapping(value: JSON) -> Obj:
    """`value` if it is a map, else {} (odd metadata is for the engine to refuse)."""
    return value if isinstance(value, dict) else {}


@dataclass
class Outcome:
    """The objects, mutated where requested, and what went wrong, per object."""

    objects: list[JSON] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def inject_all(
    docs: Iterable[JSON],
    catalog: Catalog,
    settings: Settings,
    namespace: str = "default",
    profile: str | None = None,
) -> Outcome:
    """Inject into every document, keeping their order, and into the items of Lists in them
    (`lists.map_objects`: the List keeps its shape, each item is replaced by its result);
    other kinds pass through unchanged. Objects without a namespace are taken to be in
    `namespace`; `profile` is what their namespace's label routes them to (`policy.route`).
    A document whose Lists cannot be walked (nested too deep) is an error, and passes through."""
    run = _Run(catalog, settings, namespace, profile, Outcome())
    for number, doc in enumerate(docs, 1):
        if doc is None:
            continue
        try:
            run.outcome.objects.append(map_objects(doc, run.inject))
        except ListError as exc:
            run.outcome.errors.append(f"document {number}: {exc}")
            run.outcome.objects.append(doc)
    return run.outcome


@dataclass
class _Run:
    catalog: Catalog
    settings: Settings
    namespace: str
    profile: str | None
    outcome: Outcome

    def inject(self, item: Item) -> JSON:
        doc = item.obj
        label = item.label()
        metadata = _mapping(doc.get("metadata"))
        namespace = str(metadata.get("namespace") or self.namespace)
        if item.kind == "Pod":
            return self.mutate(doc, namespace, label)
        pod = pod_of(item.resolved)
        if pod is None:
            return doc
        mutated = self.mutate(pod, namespace, label)
        if mutated is pod:
            return doc
        result = copy.deepcopy(doc)
        target = dig(result, POD_TEMPLATE_PATHS[item.kind])
        if "generateName" not in _mapping(target.get("metadata")):
            del mutated["metadata"]["generateName"]
        target["metadata"] = mutated["metadata"]
        target["spec"] = mutated["spec"]
        return result

    def mutate(self, pod: Obj, namespace: str, label: str) -> Obj:
        decision = decide(pod, namespace, self.catalog, self.settings, self.profile)
        self.outcome.errors += [f"{label}: {error}" for error in decision.errors]
        self.outcome.warnings += [f"{label}: {warning}" for warning in decision.warnings]
        if not decision.patch or decision.errors:
            return pod
        patched: Obj = jsonpatch.apply_patch(pod, copy.deepcopy(list(decision.patch)))
        return patched


def dig(doc: JSON, path: tuple[str, ...]) -> JSON:
    """The value at `path` in nested maps, or None."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc
