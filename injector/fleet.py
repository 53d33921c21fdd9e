"""Each opted-in pod's state per template — current, outdated, removed, missed, blocked —
judged with the webhook's own decision (`engine.decide`) on the pod as it was created, rebuilt
from its metadata alone.

Pods are read as metadata only (a list of 100,000 full pods costs gigabytes), so the decision
runs on a pod built from that metadata with a stand-in spec (`STAND_IN_SPEC`). What that stand-in
cannot see, and so what a state never reflects:
- a name conflict between a template and the pod's own containers or volumes (the webhook would
  refuse such a pod with `conflict`; here it is judged as if the names were free — conflicts
  between the templates themselves are still seen);
- the pod's `serviceAccountName`: templates that render `pod.serviceAccountName` see "default";
- what a template added to the pod's labels and annotations: the status annotation does not
  record them, so they stay (harmless unless a template writes the injector's own annotations).
Everything else the decision reads — the pod's annotations and labels, its (generate)name, its
namespace and that namespace's `<prefix>/inject` label, the profiles, the templates — is the
real thing.

A `Fleet` remembers its decisions by exactly what they read, so the pods of one ReplicaSet
(same generateName, labels and annotations) cost one decision. It holds no per-pod state: a
long-running consumer keeps each pod's `PodAudit` and sums them, building a new `Fleet` when
the templates or the settings change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, NamedTuple

import orjson

from injector.catalog import Catalog
from injector.engine import decide
from injector.errors import InjectionError, SkipReason
from injector.policy import Settings, route
from injector.types import JSON, Obj

State = Literal["current", "outdated", "removed", "missed", "blocked"]
STATES: Final[tuple[State, ...]] = ("current", "outdated", "removed", "missed", "blocked")
PROBLEMS: Final = frozenset({"outdated", "removed", "missed", "blocked"})
"""The states a restart (or, for blocked, a change first) is needed for."""

STAND_IN_SPEC: Final[Obj] = {"containers": [{}]}
"""The spec the decision sees: one container without a name, so no template name clashes with
it (the pod's real containers are not read; see the module's docstring)."""
MEMO_LIMIT = 20_000
"""Decisions remembered at most; past it the memo starts over (StatefulSet pods, each with its
own pod-name label, would otherwise fill it with entries used once)."""


class PodMeta(NamedTuple):
    """What the states read of a pod: its metadata, never its spec."""

    namespace: str
    name: str
    generate_name: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @classmethod
    def of(cls, metadata: Mapping[str, JSON]) -> PodMeta:
        """From a pod's metadata as the API server sends it (a PartialObjectMetadata's)."""
        generate_name = metadata.get("generateName")
        labels = metadata.get("labels")
        annotations = metadata.get("annotations")
        return cls(
            str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""),
            generate_name if isinstance(generate_name, str) and generate_name else None,
            labels if isinstance(labels, dict) else {},
            annotations if isinstance(annotations, dict) else {},
        )


class Finding(NamedTuple):
    """One template's state on one pod."""

    template: str | None
    """None: the pod as a whole (its namespace's profile is unknown, ...), for `blocked`."""
    state: State
    reason: str
    digest: str | None = None
    """The digest the pod got, when its status records the template."""


class PodAudit(NamedTuple):
    """A pod's findings; `skip` set: not audited (skipped on purpose); `error` set: its status
    annotation cannot be read (reported, never counted)."""

    findings: tuple[Finding, ...] = ()
    skip: SkipReason | None = None
    error: str | None = None

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.state in PROBLEMS)


class Recorded(NamedTuple):
    """What a status annotation says the pod got."""

    templates: tuple[tuple[str, str], ...]
    """(name, digest) in order."""
    containers: frozenset[str] | None
    init_containers: frozenset[str] | None
    """Where the names went; None when the annotation does not say (placement not judged)."""


def read_status(status: str) -> Recorded | str:
    """A status annotation's record, or what is wrong with it."""
    try:
        record = orjson.loads(status)
        templates = tuple((str(t["name"]), str(t["digest"])) for t in record["templates"])
        containers = record.get("containers")
        init = record.get("initContainers")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        return f"malformed status annotation ({type(exc).__name__}: {exc})"
    return Recorded(templates, _names(containers), _names(init))


def _names(value: JSON) -> frozenset[str] | None:
    if not isinstance(value, list):
        return None
    return frozenset(str(name) for name in value)


class Outcome(NamedTuple):
    """What one decision says, kept for the memo (not the patch: states never need it)."""

    skip: SkipReason | None
    injected: tuple[str, ...]
    errors: tuple[InjectionError, ...]


class Fleet:
    """Judges pods against one catalog and one set of settings."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.settings = settings
        self._memo: dict[tuple[object, ...], Outcome] = {}
        self._broken = frozenset(catalog.broken)

    def audit(self, pod: PodMeta, namespace_label: str | None) -> PodAudit:
        """The states of one pod, from its metadata and its namespace's `<prefix>/inject`
        label (None: unlabeled)."""
        status = pod.annotations.get(self.settings.status_key)
        recorded = read_status(status) if status is not None else Recorded((), None, None)
        if isinstance(recorded, str):
            return PodAudit(error=recorded)
        outcome = self.decision(pod, namespace_label)
        if outcome.skip is not None:
            return PodAudit(skip=outcome.skip)
        return PodAudit(self._findings(recorded, outcome))

    def decision(self, pod: PodMeta, namespace_label: str | None) -> Outcome:
        """`engine.decide` for the pod as it was created (`as_created`), with its namespace's
        label routed as the chart routes it; remembered by everything it reads."""
        status_key = self.settings.status_key
        profile = route(namespace_label, self.settings)
        key = (
            pod.namespace,
            profile,
            pod.generate_name or None,
            None if pod.generate_name else pod.name,
            frozenset(pod.labels.items()),
            frozenset(item for item in pod.annotations.items() if item[0] != status_key),
        )
        found = self._memo.get(key)
        if found is None:
            created = as_created(pod, status_key)
            decision = decide(created, pod.namespace, self.catalog, self.settings, profile)
            found = Outcome(decision.skip, decision.injected, decision.errors)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _findings(self, recorded: Recorded, outcome: Outcome) -> tuple[Finding, ...]:
        templates = self.catalog.templates
        broken = self._broken
        blocked = {e.template: e for e in outcome.errors if e.template is not None}
        found = [Finding(None, "blocked", e.message) for e in outcome.errors if e.template is None]
        got = set()
        for name, digest in recorded.templates:
            got.add(name)
            if name in broken:
                continue  # judged once it loads again
            error = blocked.get(name)
            template = templates.get(name)
            if error is not None:
                found.append(Finding(name, "blocked", error.message, digest))
            elif template is None:
                found.append(Finding(name, "removed", _REMOVED.format(name=name), digest))
            elif template.digest != digest:
                reason = _CHANGED.format(name=name, got=digest, now=template.digest)
                found.append(Finding(name, "outdated", reason, digest))
            else:
                moved = self._placement(template.sidecar_names, recorded)
                if moved is not None:
                    found.append(Finding(name, "outdated", moved, digest))
                else:
                    found.append(Finding(name, "current", "runs the current version", digest))
        for name in outcome.injected:
            if name not in got and name not in broken:
                found.append(Finding(name, "missed", _MISSED.format(name=name)))
        for name, error in blocked.items():
            if name not in got and name not in broken:
                found.append(Finding(name, "blocked", error.message))
        return tuple(found)

    def _placement(self, sidecars: tuple[str, ...], recorded: Recorded) -> str | None:
        """Why the pod's sidecars sit elsewhere than the webhook puts them now, if they do."""
        if not sidecars or recorded.containers is None or recorded.init_containers is None:
            return None
        native = self.settings.native_sidecars
        where = recorded.init_containers if native else recorded.containers
        if all(name in where for name in sidecars):
            return None
        if native:
            return (
                "its sidecars were injected as regular containers; the webhook now makes them "
                "native sidecars (init containers with restartPolicy: Always, --native-sidecars)"
            )
        return (
            "its sidecars were injected as native sidecars (init containers); the webhook now "
            "makes them regular containers (--native-sidecars=false)"
        )


_REMOVED = "template {name!r} is gone from the templates; a new pod runs without it"
_CHANGED = "runs version {got} of template {name!r}; the templates hold {now}"
_MISSED = (
    "the webhook would inject {name!r} now, but the pod runs without it (created while the "
    "webhook did not answer, or before its namespace was labeled)"
)


def as_created(pod: PodMeta, status_key: str) -> Obj:
    """The pod the webhook saw (or would see) when it was created: its metadata without the
    status annotation, the stand-in spec, and — for a pod a controller created — only its
    generateName (the apiserver names such pods after admission)."""
    metadata: Obj = {
        "namespace": pod.namespace,
        "labels": dict(pod.labels),
        "annotations": {k: v for k, v in pod.annotations.items() if k != status_key},
    }
    if pod.generate_name:
        metadata["generateName"] = pod.generate_name
    else:
        metadata["name"] = pod.name
    return {"metadata": metadata, "spec": {"containers": [dict(STAND_IN_SPEC["containers"][0])]}}
