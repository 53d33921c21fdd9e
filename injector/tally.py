"""The fleet's counts kept exact while the cluster changes: what each pod counts in is
remembered, and every change (a pod added, changed or deleted, a namespace relabeled, a relist)
moves the sums by the difference — the long-running audit never recounts the fleet for one
event, and never holds more per pod than the series it counts in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from injector.fleet import Fleet, PodAudit, PodMeta, State

Series = tuple[str, str, State]
"""namespace, template and state of one gauge series; the template is "" for a finding about
the whole pod (blocked by its namespace's profile, say)."""
PodKey = tuple[str, str]
"""namespace, name."""


def series_of(namespace: str, audit: PodAudit) -> tuple[Series, ...]:
    """The series one pod counts in: one per (template, state) of its findings; none when it
    is not audited (skipped on purpose) or its status annotation cannot be read."""
    if audit.skip is not None or audit.error is not None:
        return ()
    return tuple(sorted({(namespace, f.template or "", f.state) for f in audit.findings}))


class Tally:
    """The series every pod counts in and their sums, for one Fleet (templates and settings)
    and the namespaces' `<prefix>/inject` labels as last seen. Not thread-safe: one consumer
    feeds it."""

    def __init__(self, fleet: Fleet, labels: Mapping[str, str] | None = None) -> None:
        self.fleet = fleet
        self.counts: Counter[Series] = Counter()
        self.unreadable: dict[PodKey, str] = {}
        """Pods whose status annotation cannot be read: reported, never counted."""
        self._pods: dict[PodKey, tuple[Series, ...]] = {}
        self._labels: dict[str, str] = dict(labels or {})
        self._shared: dict[tuple[Series, ...], tuple[Series, ...]] = {}

    @classmethod
    def of(cls, fleet: Fleet, labels: Mapping[str, str], metas: Iterable[PodMeta]) -> Tally:
        """A tally of a whole list (`metas` consumed one at a time, none kept): how a relist —
        after 410 Gone, a relabeled namespace or reloaded templates — rebuilds the view."""
        tally = cls(fleet, labels)
        for meta in metas:
            tally.pod(meta)
        return tally

    @property
    def pods(self) -> int:
        """Pods seen (audited or not)."""
        return len(self._pods) + len(self.unreadable)

    @property
    def labels(self) -> dict[str, str]:
        """The namespaces' inject labels as last seen (a copy)."""
        return dict(self._labels)

    def pod(self, meta: PodMeta) -> None:
        """A pod was added or changed."""
        key = (meta.namespace, meta.name)
        audit = self.fleet.audit(meta, self._labels.get(meta.namespace))
        self._forget(key)
        if audit.error is not None:
            self.unreadable[key] = audit.error
            return
        series = series_of(meta.namespace, audit)
        # Most pods count in one of a few combinations: one tuple each, shared.
        series = self._shared.setdefault(series, series)
        self._pods[key] = series
        self.counts.update(series)

    def pod_deleted(self, namespace: str, name: str) -> None:
        self._forget((namespace, name))

    def namespace(self, name: str, label: str | None) -> bool:
        """A namespace was added or changed (`label`: its inject label, None without one), or
        deleted (None). True when the label changed: its pods must be judged again, from a
        fresh list (`Tally.of`): the tally keeps no pod's metadata."""
        before = self._labels.get(name)
        if label is None:
            self._labels.pop(name, None)
        else:
            self._labels[name] = label
        return before != label

    def replace_namespaces(self, labels: Mapping[str, str]) -> set[str]:
        """A relist of the namespaces: those whose label changed (their pods to judge again,
        from a fresh list)."""
        changed = {n for n in {*labels, *self._labels} if labels.get(n) != self._labels.get(n)}
        self._labels = dict(labels)
        return changed

    def _forget(self, key: PodKey) -> None:
        series = self._pods.pop(key, ())
        if series:
            self.counts.subtract(series)
            for gone in [s for s in series if self.counts[s] <= 0]:
                del self.counts[gone]
        self.unreadable.pop(key, None)


def count(fleet: Fleet, metas: Iterable[PodMeta], labels: Mapping[str, str]) -> Counter[Series]:
    """The sums computed afresh over a whole fleet: what `Tally.counts` equals whenever the
    cluster is quiet (and what `outdated -A` reports)."""
    found: Counter[Series] = Counter()
    for meta in metas:
        found.update(series_of(meta.namespace, fleet.audit(meta, labels.get(meta.namespace))))
    return found
