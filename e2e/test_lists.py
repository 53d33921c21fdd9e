"""`kubectl get -o yaml` piped through `sidecar-injector inject -f -`, as users run it, with
the templates the chart renders, against a real apiserver: every item of the List it prints
gets its sidecars, the List keeps its shape, and the apiserver accepts the result (a
server-side dry run, so nothing stored changes).

Cluster mode only (the List comes from a real apiserver); no webhook is needed, since
`inject` works offline."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cluster import Cluster
from e2e.pods import APPS, INJECT, STATUS, Obj, deployment, stateful_set
from e2e.tools import COMMAND

SCENARIO = "e2e.sidecar-injector.io/scenario"
SELECTOR = f"{SCENARIO}=lists"
WORKLOADS = {
    ("Deployment", "lists-web"): "log-shipper",
    ("Deployment", "lists-api"): "trace-agent",
    ("Deployment", "lists-both"): "log-shipper,trace-agent",
    ("StatefulSet", "lists-db"): "log-shipper",
}
"""Each workload and the templates its pod template asks for (each adds a container named
like the template)."""


@pytest.fixture(scope="module")
def workloads(cluster: Cluster) -> Iterator[None]:
    """The workloads, created for real in the apps namespace (no replicas: no Pods needed)."""
    for (kind, name), templates in WORKLOADS.items():
        make = stateful_set if kind == "StatefulSet" else deployment
        workload = make(name, templates, replicas=0)
        workload["metadata"]["namespace"] = APPS
        workload["metadata"]["labels"][SCENARIO] = "lists"
        cluster.kubectl.apply(workload)
    try:
        yield
    finally:
        cluster.kubectl.run(
            "delete", "deployments,statefulsets", f"--namespace={APPS}", f"--selector={SELECTOR}"
        )


@pytest.fixture(scope="module")
def templates(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cluster.release.templates_dir(tmp_path_factory.mktemp("lists") / "templates")


def inject(listing: str, templates: Path) -> Any:
    """`... | sidecar-injector inject -f - --templates-dir DIR`: what it prints, parsed."""
    result = subprocess.run(
        [COMMAND, "inject", "-f", "-", "--templates-dir", str(templates)],
        input=listing, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return yaml.safe_load(result.stdout)


def containers(workload: Obj) -> list[str]:
    return [c["name"] for c in workload["spec"]["template"]["spec"]["containers"]]


def assert_injected(items: list[Obj], kind: str | None = None) -> None:
    """Each item of WORKLOADS carries its app container, then its templates' containers, and
    the status annotation; `kind` for items that name none (a typed List's)."""
    assert sorted((item.get("kind", kind), item["metadata"]["name"]) for item in items) == sorted(
        k for k in WORKLOADS if kind is None or k[0] == kind
    )
    for item in items:
        key = (str(item.get("kind", kind)), str(item["metadata"]["name"]))
        assert containers(item) == ["app", *WORKLOADS[key].split(",")], key
        assert STATUS in item["spec"]["template"]["metadata"]["annotations"], key


def server_dry_run(cluster: Cluster, manifest: Any) -> list[Obj]:
    """`kubectl apply --dry-run=server -f -`: what the apiserver would store, item by item."""
    applied = cluster.kubectl.run(
        "apply", "--dry-run=server", "--filename=-", "--output=json", input=json.dumps(manifest)
    )
    found = json.loads(applied.stdout)
    items: list[Obj] = found["items"] if found["kind"] == "List" else [found]
    return items


def test_kubectl_get_deploy_piped_through_inject_injects_every_item(
    cluster: Cluster, workloads: None, templates: Path
) -> None:
    listing = cluster.kubectl.run(
        "get", "deployments", f"--namespace={APPS}", f"--selector={SELECTOR}", "--output=yaml"
    ).stdout
    source = yaml.safe_load(listing)
    assert source["kind"] == "List" and len(source["items"]) == 3
    assert all(INJECT in i["spec"]["template"]["metadata"]["annotations"] for i in source["items"])
    injected = inject(listing, templates)
    assert {k: v for k, v in injected.items() if k != "items"} == {
        k: v for k, v in source.items() if k != "items"
    }
    assert [i["metadata"]["name"] for i in injected["items"]] == [
        i["metadata"]["name"] for i in source["items"]
    ]
    assert_injected(injected["items"], "Deployment")
    assert_injected(server_dry_run(cluster, injected), "Deployment")
    stored = cluster.kubectl.get("deployments", f"--namespace={APPS}", f"--selector={SELECTOR}")
    assert all(containers(i) == ["app"] for i in stored["items"]), "a dry run stores nothing"


def test_a_list_of_several_kinds_and_the_api_s_own_typed_list(
    cluster: Cluster, workloads: None, templates: Path
) -> None:
    """`kubectl get deploy,sts -o yaml` (a List of two kinds); and the DeploymentList the API
    itself returns, whose items name no kind: they come out injected and still without one,
    as kubectl apply takes them."""
    mixed = cluster.kubectl.run(
        "get", "deployments,statefulsets", f"--namespace={APPS}", f"--selector={SELECTOR}",
        "--output=yaml",
    ).stdout  # fmt: skip
    injected = inject(mixed, templates)
    assert_injected(injected["items"])
    assert_injected(server_dry_run(cluster, injected))
    raw = cluster.kubectl.raw(
        f"/apis/apps/v1/namespaces/{APPS}/deployments?labelSelector={SELECTOR}"
    )
    typed = inject(raw, templates)
    assert typed["kind"] == "DeploymentList" and typed["apiVersion"] == "apps/v1"
    assert not any("kind" in item for item in typed["items"])
    assert_injected(typed["items"], "Deployment")
    assert_injected(server_dry_run(cluster, typed), "Deployment")
