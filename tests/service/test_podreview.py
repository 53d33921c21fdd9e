"""The partial, typed decode of a Pod's AdmissionReview answers exactly as the generic parse
would, and leaves every body of another shape to it."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from injector.catalog import Catalog
from injector.policy import Settings
from injector.service.admission import Answer, answer, parse
from injector.service.podreview import pod_request
from tests.service.support import sample, with_pod
from tests.test_properties import cases

PROFILES = Settings(default_templates=("log-shipper",), profiles={"mesh": ("envoy-proxy",)})


def both(body: bytes, catalog: Catalog, config: Settings, profile: str | None) -> Answer:
    """The answer through the typed decode, checked against the generic parse's."""
    request = pod_request(body)
    assert request is not None
    expected = answer(parse(body), catalog, config, "allow", profile)
    assert answer(request, catalog, config, "allow", profile) == expected
    return expected


@pytest.mark.parametrize(
    "document",
    [
        sample("log-shipper"),
        sample("log-shipper,trace-agent,envoy-proxy,db-proxy"),
        sample("nope,log-shipper"),
        sample(""),
        sample("true"),
        sample("log-shipper", operation="UPDATE"),
        sample("log-shipper", subResource="status"),
        sample("log-shipper", dryRun=True, namespace="", name="web-1"),
        sample("log-shipper", kind={"group": "apps", "version": "v1", "kind": "Pod"}),
        sample("log-shipper", object=None),
        with_pod(sample("log-shipper"), annotations={}, name="web-1"),
        with_pod(sample("trace-agent"), labels={"app": "x"}, namespace="kube-system"),
    ],
)
@pytest.mark.parametrize("profile", [None, "mesh", "enabled", "unknown-profile", "disabled"])
def test_answers_like_the_generic_parse(
    catalog: Catalog, document: dict[str, Any], profile: str | None
) -> None:
    both(orjson.dumps(document), catalog, PROFILES, profile)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_generated_pods_answer_like_the_generic_parse(
    case: tuple[dict[str, Any], Catalog, list[str], Settings],
) -> None:
    pod, catalog, _, config = case
    document = sample("", object=pod, namespace="default")
    both(orjson.dumps(document), catalog, config, None)


def _pod_with(path: tuple[str | int, ...], value: Any) -> bytes:
    document = sample("log-shipper")
    node = document["request"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return orjson.dumps(document)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        orjson.dumps({**sample(), "kind": "Pod"}),
        orjson.dumps({**sample(), "apiVersion": "admission.k8s.io/v1beta1"}),
        orjson.dumps({**sample(), "request": None}),
        _pod_with(("uid",), ""),
        _pod_with(("uid",), 7),
        _pod_with(("kind",), "Pod"),
        _pod_with(("object",), []),
        _pod_with(("object", "metadata"), None),
        _pod_with(("object", "metadata", "annotations"), None),
        _pod_with(("object", "metadata", "labels"), {"app": 1}),
        _pod_with(("object", "spec", "containers"), None),
        _pod_with(("object", "spec", "containers", 0, "env"), {"name": "A"}),
        _pod_with(("object", "spec", "volumes", 0), "config"),
        _pod_with(("object", "spec", "containers", 0, "name"), 7).replace(
            b'"name":7', b'"name":123456789012345678901234567890'
        ),
        # Skipped parts are still checked: invalid UTF-8 is refused by the generic parse.
        _pod_with(("object", "spec", "containers", 0, "image"), "x").replace(
            b'"image":"x"', b'"image":"\xff"'
        ),
    ],
)
def test_other_shapes_are_left_to_the_generic_parse(body: bytes) -> None:
    assert pod_request(body) is None


def test_what_is_not_read_is_not_decoded() -> None:
    request = pod_request(orjson.dumps(sample("log-shipper")))
    assert request is not None
    assert "userInfo" not in request
    assert "image" not in request["object"]["spec"]["containers"][0]
    full = parse(orjson.dumps(sample("log-shipper")))
    reduced = copy.deepcopy(full["object"]["metadata"])
    reduced.pop("ownerReferences", None)
    reduced.pop("creationTimestamp", None)
    assert request["object"]["metadata"] == reduced
