"""`explain` decides like the apiserver and the webhook, in their order, and names the near
misses that otherwise fail silently."""

from __future__ import annotations

from typing import Any

import pytest

from injector.ops.explain import World, explain, hints
from injector.policy import Settings
from injector.template import status_of
from tests.helpers import catalog
from tests.k8s import pod as make_pod

KEY = "sidecar-injector.io/inject"
CATALOG = catalog(
    agent="""
namespaces: ["prod-*"]
parameters:
  level: {type: string, enum: [info, debug], default: info}
  endpoint: {type: string, default: x, overridable: false}
containers: [{name: agent, image: 'agent:1'}]
""",
    proxy="containers: [{name: app, image: 'proxy:1'}]",
    shipper="containers: [{name: shipper, image: 'shipper:1'}]",
)
SETTINGS = Settings(profiles={"obs": ("shipper",)}, exclude_namespaces=frozenset({"kube-system"}))
ENTRIES: list[dict[str, Any]] = [
    {
        "name": "inject.sidecar-injector.io",
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": ["kube-system", "injector"],
                },
            ]
        },
    }
]


def pod(annotations: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    built = make_pod()
    built["metadata"] = {"name": "web", "annotations": annotations or {}, **meta}
    return built


def world(label: str | None = None, entries: list[dict[str, Any]] | None = ENTRIES) -> World:
    labels = {KEY: label} if label is not None else {}
    return World(SETTINGS, CATALOG, labels, entries)


@pytest.mark.parametrize(
    ("annotations", "namespace", "label", "reason", "says"),
    [
        ({KEY: "shipper"}, "kube-system", None, "excluded_namespace", "never sent to the webhook"),
        ({KEY: "shipper"}, "injector", None, "excluded_namespace", "namespaceSelector"),
        (
            {KEY: "shipper"},
            "shop",
            "disabled",
            "namespace_disabled",
            "labeled sidecar-injector.io/inject=disabled",
        ),
        ({}, "shop", None, "not_requested", "has no sidecar-injector.io/inject annotation"),
        ({}, "shop", "obz", "profile_not_found", "names no profile"),
        ({KEY: "false"}, "shop", "obs", "opted_out", "keeps it away from the webhook"),
        ({KEY: " "}, "shop", None, "opted_out", "keeps it away"),
        ({KEY: "nope"}, "shop", None, "template_not_found", "template 'nope' not found"),
        ({KEY: "agent"}, "dev", None, "namespace_not_allowed", "not allowed in namespace 'dev'"),
        (
            {KEY: "agent", "sidecar-injector.io/agent.endpoint": "y"},
            "prod-1",
            None,
            "parameter_locked",
            "locked",
        ),
        (
            {KEY: "agent", "sidecar-injector.io/agent.level": "loud"},
            "prod-1",
            None,
            "invalid_parameter",
            "'loud' is not valid",
        ),
        ({KEY: "proxy"}, "shop", None, "conflict", "adds container 'app'"),
    ],
)
def test_each_reason_in_the_order_the_webhook_decides(
    annotations: dict[str, str], namespace: str, label: str | None, reason: str, says: str
) -> None:
    found = explain("Pod web", pod(annotations), namespace, world(label))
    assert (found.injected, found.reason) == (False, reason), found.message
    assert says in found.message
    assert found.fix


def test_would_be_injected_by_the_annotation_or_the_profile() -> None:
    own = explain("Pod web", pod({KEY: "shipper"}), "shop", world("obs"))
    assert (own.injected, own.message) == (True, "would be injected with shipper")
    profiled = explain("Pod web", pod(), "shop", world("obs"))
    assert profiled.message == "would be injected with shipper (profile obs)"


def test_an_injected_pod_says_whether_it_is_outdated() -> None:
    template = CATALOG.templates["shipper"]
    current = explain(
        "Pod web",
        pod({KEY: "shipper", "sidecar-injector.io/status": status_of([template], native=False)}),
        "shop",
        world(),
    )
    assert current.injected and current.message == "injected with shipper, all current"
    old = status_of([template], native=False).replace(template.digest, "0000000000000000")
    stale = explain(
        "Pod web", pod({KEY: "shipper", "sidecar-injector.io/status": old}), "shop", world()
    )
    assert stale.injected and stale.states[0]["state"] == "outdated"
    assert stale.outdated == [
        f"shipper: outdated: runs version 0000000000000000 of template 'shipper'; the templates hold {template.digest}; recreate the pod (kubectl rollout restart for a workload)"
    ]
    assert "  outdated: shipper: runs version 0000000000000000" in "\n".join(stale.lines())


def test_a_live_pod_without_its_sidecar_is_missed_and_a_refused_one_blocked() -> None:
    missed = explain("Pod web", pod({KEY: "shipper"}), "shop", world(), live=True)
    assert (missed.injected, missed.reason) == (False, "missed")
    assert missed.message.startswith(
        "the webhook would inject 'shipper' now, but the pod runs without it"
    )
    assert missed.fix.startswith("recreate the pod")
    # the same manifest, not created yet: would be injected
    assert explain("Pod web", pod({KEY: "shipper"}), "shop", world()).injected
    blocked = explain("Pod web", pod({KEY: "nope"}), "shop", world(), live=True)
    assert (blocked.injected, blocked.reason) == (False, "template_not_found")
    assert [s["state"] for s in blocked.states] == ["blocked"]
    assert "  blocked: nope: template 'nope' not found" in "\n".join(blocked.lines())


def test_offline_there_is_no_webhook_configuration_to_consult() -> None:
    found = explain("Pod web", pod({KEY: "shipper"}), "injector", world(entries=None))
    assert found.injected


def test_online_without_a_webhook_configuration_nothing_is_injected() -> None:
    found = explain("Pod web", pod({KEY: "shipper"}), "shop", world(entries=[]))
    assert (found.injected, found.reason) == (False, "no_webhook")
    assert "no MutatingWebhookConfiguration" in found.message


def test_near_misses_are_hints() -> None:
    annotations = {
        "sidecar-injector.io/injct": "shipper",
        "sidecar-injectr.io/inject": "shipper",
        "sidecar.istio.io/inject": "true",
        "sidecar-injector.io/agent.levl": "debug",
        "app.kubernetes.io/name": "web",
    }
    owner = {"kind": "Deployment", "metadata": {"annotations": {KEY: "shipper"}}}
    found = explain("Deployment web", pod(annotations), "shop", world(), owner)
    assert found.reason == "not_requested"
    assert found.hints == [
        "annotation sidecar-injector.io/agent.levl overrides template 'agent', which this pod does not request (it requests no template): it has no effect",
        "annotation sidecar-injector.io/injct looks like a typo of sidecar-injector.io/inject",
        "annotation sidecar-injectr.io/inject looks like a typo of sidecar-injector.io/inject",
        "annotation sidecar.istio.io/inject is another prefix's; this injector reads sidecar-injector.io/inject",
        "sidecar-injector.io/inject is set on the Deployment's own metadata; it belongs in spec.template.metadata.annotations (the pods')",
    ]
    assert hints(pod({KEY: "shipper"}), world()) == []


def test_an_override_for_a_template_not_requested_is_a_hint_injected_or_not() -> None:
    typo = {"sidecar-injector.io/shiper.level": "debug"}
    expected = [
        "annotation sidecar-injector.io/shiper.level overrides template 'shiper', which this "
        "pod does not request (it requests shipper): did you mean sidecar-injector.io/shipper.level?"
    ]
    would = explain("Pod web", pod({KEY: "shipper", **typo}), "shop", world())
    assert would.injected and would.hints == expected
    by_profile = explain("Pod web", pod(typo), "shop", world("obs"))
    assert by_profile.injected and by_profile.hints == expected
    status = status_of([CATALOG.templates["shipper"]], native=False)
    injected = {KEY: "shipper", "sidecar-injector.io/status": status, **typo}
    assert explain("Pod web", pod(injected), "shop", world()).hints == expected
    denied = explain("Pod web", pod({KEY: "shipper,nope", **typo}), "shop", world())
    assert not denied.injected and denied.hints[0].endswith(
        "(it requests shipper, nope): did you mean sidecar-injector.io/shipper.level?"
    )


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        (None, "the pod has no metadata"),
        ({"annotations": ["x"]}, "metadata.annotations must be a map"),
        ({"annotations": {KEY: True}}, f"metadata.annotations: {KEY!r}: True is not a string"),
        ({"labels": {1: "x"}}, "metadata.labels: 1: 'x' is not a string; quote it"),
    ],
)
def test_a_manifest_the_api_server_would_refuse_says_why(metadata: Any, says: str) -> None:
    broken = {**pod(), "metadata": metadata}
    found = explain("Pod web", broken, "shop", world(), {"metadata": "x"})
    assert (found.injected, found.reason) == (False, "invalid_pod")
    assert says in found.message


def test_an_owner_with_odd_metadata_gives_no_hint() -> None:
    assert hints(pod(), world(), {"kind": "Deployment", "metadata": "x"}) == []
