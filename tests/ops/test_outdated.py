"""`outdated` over plain records: digests compared as the service computes them, pods grouped
under the workload that replaces them, broken templates and malformed annotations apart."""

from __future__ import annotations

import orjson

from injector.ops.outdated import PodRecord, Workload, report
from injector.template import status_of
from tests.helpers import catalog

CATALOG = catalog(
    a="containers: [{name: sa, image: 'a:1'}]",
    b="containers: [{name: sb, image: 'b:1'}]",
)
CURRENT = {name: t.digest for name, t in CATALOG.templates.items()}


def status(**digests: str) -> str:
    return orjson.dumps(
        {"templates": [{"name": n, "digest": d} for n, d in digests.items()], "containers": []}
    ).decode()


def pod(name: str, owner: tuple[str, str] | None, **digests: str) -> PodRecord:
    return PodRecord("shop", name, owner, status(**digests) if digests else None)


def test_only_pods_with_an_older_or_removed_template_are_listed_by_workload() -> None:
    old = "0123456789abcdef"
    pods = [
        pod("web-1", ("ReplicaSet", "web-7d9"), a=old, b=CURRENT["b"]),
        pod("web-2", ("ReplicaSet", "web-7d9"), a=old),
        pod("fresh", ("ReplicaSet", "web-7d9"), a=CURRENT["a"]),
        pod("db-0", ("StatefulSet", "db"), c=old),
        pod("agent-x", ("DaemonSet", "agent"), a=old),
        pod("nightly-1-abc", ("Job", "nightly-1"), a=old),
        pod("once-xyz", ("Job", "once"), a=old),
        pod("bare", None, a=old),
        pod("orphan-rs-1", ("ReplicaSet", "orphan-rs"), a=old),
        pod("not-injected", None),
    ]
    owners = {
        ("shop", "ReplicaSet", "web-7d9"): ("Deployment", "web"),
        ("shop", "Job", "nightly-1"): ("CronJob", "nightly"),
    }
    found = report(pods, owners, CURRENT, broken=())
    assert found.scanned == 10 and found.outdated_pods == 8
    by = {(w.kind, w.name): w for w in found.workloads}
    assert sorted(by) == [
        ("CronJob", "nightly"),
        ("DaemonSet", "agent"),
        ("Deployment", "web"),
        ("Job", "once"),
        ("Pod", "bare"),
        ("ReplicaSet", "orphan-rs"),
        ("StatefulSet", "db"),
    ]
    web = by["Deployment", "web"]
    assert sorted(web.pods) == ["web-1", "web-2"]
    assert [(s.template, s.reason) for s in web.pods["web-1"]] == [("a", "changed")]
    assert by["StatefulSet", "db"].pods["db-0"][0].reason == "removed"
    assert web.command == "kubectl rollout restart deployment/web -n shop"
    assert by["DaemonSet", "agent"].command == "kubectl rollout restart daemonset/agent -n shop"
    assert by["CronJob", "nightly"].command.startswith("none needed: the CronJob's next run")
    assert by["Job", "once"].command == "kubectl delete pod once-xyz -n shop"
    assert by["Pod", "bare"].command == "kubectl delete pod bare -n shop"


def test_broken_templates_are_reported_not_counted() -> None:
    found = report([pod("p", None, a="old")], {}, {}, broken={"a"})
    assert found.workloads == [] and found.broken == ["a"]


def test_malformed_status_annotations_are_errors_for_that_pod() -> None:
    pods = [
        PodRecord("shop", "bad-json", None, "{not json"),
        PodRecord("shop", "no-templates", None, "{}"),
        PodRecord("shop", "wrong-shape", None, '{"templates": [7]}'),
        pod("fine", None, a="old"),
    ]
    found = report(pods, {}, CURRENT, ())
    assert [(p, e.split(" (")[0]) for _, p, e in found.errors] == [
        ("bad-json", "malformed status annotation"),
        ("no-templates", "malformed status annotation"),
        ("wrong-shape", "malformed status annotation"),
    ]
    assert found.outdated_pods == 1


def test_the_service_s_own_status_record_is_read() -> None:
    record = status_of([CATALOG.templates["a"]], "mesh", native=True)
    found = report([PodRecord("shop", "p", None, record)], {}, {"a": "changed0"}, ())
    assert found.workloads[0].pods["p"][0].digest == CATALOG.templates["a"].digest
    assert report([PodRecord("shop", "p", None, record)], {}, CURRENT, ()).workloads == []


def test_json_lists_workloads_pods_and_errors() -> None:
    workload = Workload("Deployment", "shop", "web")
    found = report([pod("web-1", ("Deployment", "web"), a="old")], {}, CURRENT, ())
    assert found.to_json()["workloads"] == [
        {
            "kind": workload.kind,
            "namespace": "shop",
            "name": "web",
            "command": "kubectl rollout restart deployment/web -n shop",
            "pods": [
                {
                    "name": "web-1",
                    "templates": [{"name": "a", "reason": "changed", "digest": "old"}],
                }
            ],
        }
    ]
