"""`outdated` over pods judged by `injector.fleet`: grouped under the workload that replaces
them, the fix per workload (restart, wait for the webhook to serve the new version, or what to
change first), malformed annotations apart; metadata-only pages and the pods proxy read
through lightkube."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Pod

from injector.fleet import Fleet, PodAudit, PodMeta
from injector.ops.kube import METADATA_LIST, list_metadata, proxy_get
from injector.ops.outdated import PodRecord, Served, Workload, report
from injector.policy import Settings
from injector.template import status_of
from tests.helpers import catalog

KEY = "sidecar-injector.io/inject"
STATUS = "sidecar-injector.io/status"
CATALOG = catalog(
    a="containers: [{name: sa, image: 'a:1'}]",
    b="containers: [{name: sb, image: 'b:1'}]",
    only_shop="namespaces: [shop]\ncontainers: [{name: so, image: 'o:1'}]",
)
CURRENT = CATALOG.digests
FLEET = Fleet(CATALOG, Settings())
OLD = "0123456789abcdef"


def status(**digests: str) -> str:
    return orjson.dumps(
        {"templates": [{"name": n, "digest": d} for n, d in digests.items()], "containers": []}
    ).decode()


def pod(
    name: str,
    owner: tuple[str, str] | None,
    inject: str | None = "a",
    namespace: str = "shop",
    **digests: str,
) -> PodRecord:
    annotations = {KEY: inject} if inject is not None else {}
    if digests:
        annotations[STATUS] = status(**digests)
    audit = FLEET.audit(PodMeta(namespace, name, None, {}, annotations), None)
    return PodRecord(namespace, name, owner, audit)


def test_pods_with_a_problem_are_listed_by_workload_with_their_states() -> None:
    pods = [
        pod("web-1", ("ReplicaSet", "web-7d9"), "a,b", a=OLD, b=CURRENT["b"]),
        pod("web-2", ("ReplicaSet", "web-7d9"), a=OLD),
        pod("fresh", ("ReplicaSet", "web-7d9"), a=CURRENT["a"]),
        pod("db-0", ("StatefulSet", "db"), "a", c=OLD, a=CURRENT["a"]),
        pod("agent-x", ("DaemonSet", "agent"), a=OLD),
        pod("nightly-1-abc", ("Job", "nightly-1"), a=OLD),
        pod("once-xyz", ("Job", "once"), "b"),
        pod("bare", None, a=OLD),
        pod("not-opted-in", None, None, a=OLD),
    ]
    owners = {
        ("shop", "ReplicaSet", "web-7d9"): ("Deployment", "web"),
        ("shop", "Job", "nightly-1"): ("CronJob", "nightly"),
    }
    found = report(pods, owners)
    assert found.scanned == 9 and found.skipped == 1 and found.problem_pods == 7
    assert found.counts == {
        "current": 3,
        "outdated": 5,
        "removed": 1,
        "missed": 1,
        "blocked": 0,
    }
    by = {(w.kind, w.name): w for w in found.workloads}
    web = by["Deployment", "web"]
    assert sorted(web.pods) == ["web-1", "web-2"]
    assert [(f.template, f.state) for f in web.pods["web-1"]] == [("a", "outdated")]
    assert [(f.template, f.state) for f in by["StatefulSet", "db"].pods["db-0"]] == [
        ("c", "removed")
    ]
    assert [(f.template, f.state) for f in by["Job", "once"].pods["once-xyz"]] == [("b", "missed")]
    assert found.fix(web) == "kubectl rollout restart deployment/web -n shop"
    assert by["CronJob", "nightly"].restart is not None
    assert by["CronJob", "nightly"].restart.startswith("none needed: the CronJob's next run")
    assert found.fix(by["Job", "once"]) == "kubectl delete pod once-xyz -n shop"
    assert found.fix(by["Pod", "bare"]) == "kubectl delete pod bare -n shop"


def test_blocked_pods_say_what_to_change_first() -> None:
    blocked = pod("p", ("ReplicaSet", "rs"), "only-shop", namespace="other")
    found = report([blocked], {("other", "ReplicaSet", "rs"): ("Deployment", "web")})
    (workload,) = found.workloads
    assert workload.restart is None and found.counts["blocked"] == 1
    assert found.fix(workload) == (
        "first: template 'only-shop' is not allowed in namespace 'other' (allowed: shop)"
    )
    both = pod("q", None, "a,only-shop", namespace="other", a=OLD)
    (workload,) = report([both], {}).workloads
    assert report([both], {}).fix(workload).endswith("; then: kubectl delete pod q -n other")


def test_a_restart_waits_until_the_webhook_serves_the_configmap_s_version() -> None:
    pods = [pod("web-1", ("Deployment", "web"), a=OLD), pod("new", ("Deployment", "new"), "b")]
    lagging = Served({"webhook-1": {**CURRENT, "a": OLD}, "webhook-2": dict(CURRENT)})
    found = report(pods, {}, served=lagging, current=CURRENT)
    assert found.behind == {"a": f"the ConfigMap holds {CURRENT['a']}; webhook-1: {OLD}"}
    by = {w.name: w for w in found.workloads}
    assert found.fix(by["web"]).startswith(
        "wait until the webhook serves the ConfigMap's a (a restart now recreates the old "
        "version), then: kubectl rollout restart deployment/web -n shop"
    )
    assert found.fix(by["new"]) == "kubectl rollout restart deployment/new -n shop"
    json = found.to_json()
    assert json["served"]["known"] and json["workloads"][1]["wait"] == ["a"]
    unknown = report(pods, {}, served=Served(unknown="no ready webhook replica"), current=CURRENT)
    assert unknown.to_json()["served"] == {
        "known": False,
        "unknown": "no ready webhook replica",
        "down": False,
        "replicas": {},
        "behind": {},
    }
    assert unknown.fix(by["new"]) == "kubectl rollout restart deployment/new -n shop"


def test_no_ready_webhook_replica_means_wait_before_a_restart() -> None:
    pods = [pod("new", ("Deployment", "new"), "b")]
    down = Served(unknown="no ready webhook replica in namespace si", down="si")
    found = report(pods, {}, served=down, current=CURRENT)
    (workload,) = found.workloads
    assert found.fix(workload) == (
        "wait until a webhook replica is ready (kubectl get deployments -n si; a restart now "
        "recreates the pods without their sidecars, or its new pods are refused and it "
        "stalls), then: "
        "kubectl rollout restart deployment/new -n shop"
    )
    assert found.to_json()["served"]["down"] is True


def test_malformed_status_annotations_are_errors_never_counted() -> None:
    bad = {KEY: "a", STATUS: "{not json"}
    pods = [
        PodRecord("shop", "bad", None, FLEET.audit(PodMeta("shop", "bad", None, {}, bad), None)),
        pod("fine", None, a=OLD),
    ]
    found = report(pods, {})
    assert [(p, e.split(" (")[0]) for _, p, e in found.errors] == [
        ("bad", "malformed status annotation")
    ]
    assert found.problem_pods == 1 and found.counts["outdated"] == 1


def test_broken_templates_are_reported_not_counted() -> None:
    skipped = PodRecord("shop", "p", None, PodAudit())
    assert report([skipped], {}, broken=["a"]).broken == ["a"]


def test_the_service_s_own_status_record_is_read() -> None:
    record = status_of([CATALOG.templates["a"]], "mesh", native=True)
    meta = PodMeta("shop", "p", None, {}, {KEY: "a", STATUS: record})
    found = report([PodRecord("shop", "p", None, FLEET.audit(meta, None))], {})
    assert found.workloads == [] and found.counts["current"] == 1


def test_json_lists_workloads_pods_states_and_errors() -> None:
    workload = Workload("Deployment", "shop", "web")
    found = report([pod("web-1", ("Deployment", "web"), a=OLD)], {})
    reason = f"runs version {OLD} of template 'a'; the templates hold {CURRENT['a']}"
    assert found.to_json()["workloads"] == [
        {
            "kind": workload.kind,
            "namespace": "shop",
            "name": "web",
            "command": "kubectl rollout restart deployment/web -n shop",
            "first": [],
            "wait": [],
            "fix": "kubectl rollout restart deployment/web -n shop",
            "pods": [
                {
                    "name": "web-1",
                    "templates": [
                        {"name": "a", "state": "outdated", "reason": reason, "digest": OLD}
                    ],
                }
            ],
        }
    ]


# --- reading through lightkube ---


def client(handler: Any) -> Client:
    config = KubeConfig.from_dict(
        {
            "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )
    return Client(config, transport=httpx2.MockTransport(handler))


def test_pods_are_listed_as_metadata_in_pages() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        token = request.url.params.get("continue")
        items = [{"metadata": {"name": "p2" if token else "p1", "namespace": "shop"}}]
        page = {"kind": "PartialObjectMetadataList", "metadata": {}, "items": items}
        if not token:
            page["metadata"] = {"continue": "next"}
        return httpx2.Response(200, content=orjson.dumps(page))

    names = [m["name"] for m in list_metadata(client(handler), Pod, "*")]
    assert names == ["p1", "p2"]
    assert [r.url.path for r in seen] == ["/api/v1/pods", "/api/v1/pods"]
    assert all(r.headers["accept"] == METADATA_LIST for r in seen)
    assert seen[0].url.params["limit"] == "500" and seen[1].url.params["continue"] == "next"


def test_the_pods_proxy_reaches_the_replica_s_port() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/api/v1/namespaces/si/pods/webhook-1:8080/proxy/debug/templates"
        return httpx2.Response(200, content=b'{"templates": []}')

    assert proxy_get(client(handler), "si", "webhook-1", 8080, "debug/templates") == (
        b'{"templates": []}'
    )
