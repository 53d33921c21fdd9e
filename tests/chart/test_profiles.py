"""Namespace profiles in the chart: one webhook entry per profile (plus `enabled` with default
templates) and a catch-all for label values that name none, routed exactly as the service's
`policy.route` expects, in Service and url mode, valid for Kubernetes."""

from __future__ import annotations

from typing import Any

import pytest

from injector.ops.selectors import matches
from injector.policy import DISABLED, Settings, route
from tests.k8s import assert_valid

from .helm import NAMESPACE, Helm, Manifest, flags, only, webhook_container

MWC = "templates/webhook-mutatingwebhookconfiguration.yaml"
DEPLOYMENT = "templates/webhook-deployment.yaml"
LABEL = "sidecar-injector.io/inject"
PROFILE_SETS: dict[str, dict[str, list[str]]] = {
    "none": {},
    "one": {"observability": ["log-shipper", "trace-agent"]},
    "three": {"mesh": ["envoy-proxy"], "logs": ["log-shipper"], "tracing": ["trace-agent"]},
}
URL = "https://injector.example.com/mutate"


def render(helm: Helm, profiles: dict[str, list[str]], defaults: list[str], url: bool) -> Any:
    values: dict[str, Any] = {"config": {"profiles": profiles, "defaultTemplates": defaults}}
    if url:
        values["webhook"] = {"url": URL}
    return helm.template(values, show_only=[MWC, DEPLOYMENT])


def path_of(webhook: Manifest) -> str:
    client = webhook["clientConfig"]
    if "service" in client:
        path: str = client["service"]["path"]
        return path
    url: str = client["url"]
    return "/mutate" + url.removeprefix(URL)


def app_entries(doc: Manifest) -> list[Manifest]:
    return [w for w in doc["webhooks"] if not w["name"].startswith("helm-test.")]


@pytest.mark.parametrize("url", [False, True], ids=["service", "url"])
@pytest.mark.parametrize("defaults", [[], ["log-shipper"]], ids=["no-defaults", "defaults"])
@pytest.mark.parametrize("profiles", PROFILE_SETS, ids=list(PROFILE_SETS))
def test_entries_route_each_namespace_label_like_the_service(
    helm: Helm, profiles: str, defaults: list[str], url: bool
) -> None:
    docs = render(helm, PROFILE_SETS[profiles], defaults, url)
    doc = only(docs, "MutatingWebhookConfiguration")
    assert_valid(doc)
    args = flags(webhook_container(docs))
    settings = Settings(
        default_templates=tuple(defaults),
        profiles={
            name: tuple(names.split(","))
            for name, _, names in (p.partition("=") for p in args.get("--profile", "").split(";"))
            if name
        },
    )
    assert settings.profiles == {k: tuple(v) for k, v in PROFILE_SETS[profiles].items()}
    routed = sorted(settings.routed_profiles)
    entries = app_entries(doc)
    assert [w["name"] for w in entries] == [
        "inject.sidecar-injector.io",
        *(f"{p}.profile.inject.sidecar-injector.io" for p in sorted(PROFILE_SETS[profiles])),
        *(["enabled.profile.inject.sidecar-injector.io"] if defaults else []),
        "unknown-profile.profile.inject.sidecar-injector.io",
    ]
    catch_all = entries[-1]["namespaceSelector"]["matchExpressions"]
    [not_in] = [e for e in catch_all if e["key"] == LABEL and e["operator"] == "NotIn"]
    assert sorted(not_in["values"]) == sorted([*routed, DISABLED])
    for label in [None, DISABLED, *routed, "enabled", "typo", "unknown-profile", ""]:
        namespace = {"kubernetes.io/metadata.name": "shop"}
        if label is not None:
            namespace[LABEL] = label
        hit = [w for w in entries if matches(w["namespaceSelector"], namespace)]
        expected = route(label, settings)
        if expected == DISABLED:
            assert hit == [], f"label {label!r}: a disabled namespace reaches no entry"
            continue
        assert len(hit) == 1, f"label {label!r} matches {[w['name'] for w in hit]}"
        assert path_of(hit[0]) == "/mutate" + ("" if expected is None else f"/{expected}")
        # The release namespace and kube-system are never sent, whatever their label.
        for excluded in ("kube-system", NAMESPACE):
            namespace["kubernetes.io/metadata.name"] = excluded
            assert not any(matches(w["namespaceSelector"], namespace) for w in entries)


@pytest.mark.parametrize(
    ("profiles", "message"),
    [
        ({"enabled": ["x"]}, "invalid propertyName 'enabled'"),
        ({"disabled": ["x"]}, "invalid propertyName 'disabled'"),
        ({"unknown-profile": ["x"]}, "invalid propertyName 'unknown-profile'"),
        ({"Mesh": ["x"]}, "invalid propertyName 'Mesh'"),
        ({"false": ["x"]}, "invalid propertyName 'false'"),
        ({"big": [f"t{i}" for i in range(33)]}, "maxItems"),
        ({"mesh": []}, "minItems"),
        ({"mesh": ["Envoy"]}, "mesh"),
    ],
)
def test_the_schema_refuses_reserved_and_malformed_profiles(
    helm: Helm, profiles: dict[str, list[str]], message: str
) -> None:
    error = helm.template_error({"config": {"profiles": profiles}})
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_the_schema_refuses_more_default_templates_than_a_pod_may_request(helm: Helm) -> None:
    many = [f"t{i}" for i in range(33)]
    error = helm.template_error({"config": {"defaultTemplates": many}})
    assert "defaultTemplates" in error and "maxItems" in error
