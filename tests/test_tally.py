"""The audit's running counts: exact after any sequence of pod and namespace changes, relists
(a 410 Gone is one) and template changes, compared with a fresh count of the same cluster."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from injector.fleet import Fleet, PodMeta
from injector.policy import Settings
from injector.tally import Tally, count, series_of
from injector.template import status_of
from tests.helpers import catalog

KEY = "sidecar-injector.io/inject"
STATUS = "sidecar-injector.io/status"
CATALOG = catalog(
    logs="sidecars: [{name: logs, image: 'l:1'}]\n",
    trace="containers: [{name: trace, image: 't:1'}]\n",
    shop_only="namespaces: ['shop']\ncontainers: [{name: only, image: 'o:1'}]\n",
)
EDITED = catalog(
    logs="sidecars: [{name: logs, image: 'l:2'}]\n",
    trace="containers: [{name: trace, image: 't:1'}]\n",
)
SETTINGS = Settings(profiles={"obs": ("logs", "trace")}, default_templates=("logs",))
NAMESPACES = ["shop", "dev", "kube-system"]


def status(*names: str) -> str:
    return status_of([CATALOG.templates[n] for n in names], None, native=False)


ANNOTATIONS = st.sampled_from(
    [
        {},
        {KEY: "false"},
        {KEY: "logs"},
        {KEY: "logs", STATUS: status("logs")},
        {KEY: "trace,logs", STATUS: status("trace")},
        {KEY: "shop-only", STATUS: status("shop-only")},
        {KEY: "nope"},
        {STATUS: status("logs", "trace")},
        {KEY: "logs", STATUS: "{not json"},
    ]
)
LABELS = st.sampled_from([None, "obs", "enabled", "disabled", "typo"])
NAMES = st.sampled_from(["a", "b", "c", "d"])


@dataclass
class Cluster:
    """What the API server holds: pods and the namespaces' inject labels."""

    pods: dict[tuple[str, str], PodMeta] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def metas(self, namespace: str | None = None) -> list[PodMeta]:
        return [m for k, m in self.pods.items() if namespace in (None, k[0])]


OPERATIONS = st.one_of(
    st.tuples(st.just("pod"), st.sampled_from(NAMESPACES), NAMES, ANNOTATIONS),
    st.tuples(st.just("delete"), st.sampled_from(NAMESPACES), NAMES),
    st.tuples(st.just("label"), st.sampled_from(NAMESPACES), LABELS),
    st.tuples(st.just("relist")),
    st.tuples(st.just("templates")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(OPERATIONS, max_size=30))
def test_the_counts_equal_a_fresh_count_after_any_changes(operations: list[tuple]) -> None:  # type: ignore[type-arg]
    cluster = Cluster()
    fleet = Fleet(CATALOG, SETTINGS)
    tally = Tally(fleet)
    for operation in operations:
        match operation:
            case ("pod", namespace, name, annotations):
                meta = PodMeta(namespace, name, None, {"app": name}, annotations)
                cluster.pods[namespace, name] = meta
                tally.pod(meta)
            case ("delete", namespace, name):
                cluster.pods.pop((namespace, name), None)
                tally.pod_deleted(namespace, name)
            case ("label", namespace, label):
                if label is None:
                    cluster.labels.pop(namespace, None)
                else:
                    cluster.labels[namespace] = label
                if tally.namespace(namespace, label):  # the audit lists the pods again
                    tally = Tally.of(fleet, tally.labels, cluster.metas())
            case ("relist",):  # a 410 Gone, or the watch restarted: list everything again
                tally.replace_namespaces(cluster.labels)
                tally = Tally.of(fleet, tally.labels, cluster.metas())
            case ("templates",):
                fleet = Fleet(EDITED if fleet.catalog is CATALOG else CATALOG, SETTINGS)
                tally = Tally.of(fleet, tally.labels, cluster.metas())
        expected = count(fleet, cluster.metas(), cluster.labels)
        assert tally.counts == expected
        assert all(n > 0 for n in tally.counts.values())
    assert tally.pods == len(cluster.pods)


def test_a_malformed_status_is_reported_never_counted() -> None:
    tally = Tally(Fleet(CATALOG, SETTINGS))
    tally.pod(PodMeta("shop", "web", None, {}, {KEY: "logs", STATUS: "{not json"}))
    assert tally.counts == Counter()
    assert tally.unreadable[("shop", "web")].startswith("malformed status annotation")
    tally.pod(PodMeta("shop", "web", None, {}, {KEY: "logs", STATUS: status("logs")}))
    assert tally.unreadable == {}
    assert tally.counts == Counter({("shop", "logs", "current"): 1})


def test_a_relabeled_namespace_asks_for_its_pods_again() -> None:
    tally = Tally(Fleet(CATALOG, SETTINGS))
    pod = PodMeta("shop", "web", None, {}, {})
    tally.pod(pod)
    assert tally.counts == Counter()
    assert tally.namespace("shop", "obs") is True
    assert tally.namespace("shop", "obs") is False
    tally = Tally.of(tally.fleet, tally.labels, [pod])
    assert tally.counts == Counter({("shop", "logs", "missed"): 1, ("shop", "trace", "missed"): 1})


def test_pods_skipped_on_purpose_count_nowhere() -> None:
    fleet = Fleet(CATALOG, SETTINGS)
    for opt_out in ({}, {KEY: "false"}):
        audit = fleet.audit(PodMeta("shop", "web", None, {}, opt_out), None)
        assert series_of("shop", audit) == ()
    disabled = fleet.audit(PodMeta("shop", "web", None, {}, {KEY: "logs"}), "disabled")
    assert series_of("shop", disabled) == ()
