from __future__ import annotations

from typing import Any

import pytest

from injector.errors import InjectionError
from injector.policy import Settings, pod_skip, request_skip, requested

S = Settings(default_templates=("a", "b"))


def req(**fields: Any) -> dict[str, Any]:
    return {"kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE", **fields}


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (req(), None),
        (req(operation="UPDATE"), "not_create"),
        (req(kind={"group": "apps", "version": "v1", "kind": "Deployment"}), "not_pod"),
        (req(kind={"group": "example.com", "version": "v1", "kind": "Pod"}), "not_pod"),
        (req(subResource="ephemeralcontainers"), "not_pod"),
        ({}, "not_pod"),
    ],
)
def test_request_skip(request_: dict[str, Any], reason: str | None) -> None:
    assert request_skip(request_) == reason


def test_pod_skip_rules() -> None:
    assert pod_skip({}, "kube-system", S) == "excluded_namespace"
    assert pod_skip({"sidecar-injector.io/status": "{}"}, "shop", S) == "already_injected"
    assert pod_skip({}, "shop", S) is None
    assert (
        pod_skip({}, "ops", Settings(exclude_namespaces=frozenset({"ops"}))) == "excluded_namespace"
    )


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (None, ()),
        ("", ()),
        ("  ", ()),
        ("false", ()),
        ("False", ()),
        ("true", ("a", "b")),
        (" TRUE ", ("a", "b")),
        ("x", ("x",)),
        ("y, x ,,y", ("y", "x")),
        (5, ()),
    ],
)
def test_opt_in_annotation(value: object, names: tuple[str, ...]) -> None:
    annotations = {} if value is None else {"sidecar-injector.io/inject": value}
    assert requested(annotations, S) == names


def test_true_without_defaults_is_an_error_that_says_what_to_do() -> None:
    result = requested({"sidecar-injector.io/inject": "true"}, Settings())
    assert isinstance(result, InjectionError)
    assert result.reason == "no_default_templates"
    assert "--default-templates" in result.message


def test_the_prefix_is_configurable() -> None:
    settings = Settings(annotation_prefix="inject.example.com")
    assert requested({"inject.example.com/inject": "x"}, settings) == ("x",)
    assert requested({"sidecar-injector.io/inject": "x"}, settings) == ()
    assert settings.status_key == "inject.example.com/status"
    assert settings.param_prefix("x") == "inject.example.com/x."
