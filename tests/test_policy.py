from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from injector.errors import InjectionError
from injector.policy import (
    Settings,
    check_profile_name,
    overrides,
    pod_skip,
    profile_templates,
    request_skip,
    requested,
    route,
    stray_overrides,
)

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
        (None, None),
        ("", ()),
        ("  ", ()),
        ("false", ()),
        ("False", ()),
        ("true", ("a", "b")),
        (" TRUE ", ("a", "b")),
        ("x", ("x",)),
        ("y, x ,,y", ("y", "x")),
        (5, None),
    ],
)
def test_opt_in_annotation(value: object, names: tuple[str, ...] | None) -> None:
    """None: the pod has no annotation of its own, so its namespace's profile decides."""
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
    assert requested({"sidecar-injector.io/inject": "x"}, settings) is None
    assert settings.status_key == "inject.example.com/status"
    assert settings.param_prefix("x") == "inject.example.com/x."


P = Settings(default_templates=("a",), profiles={"mesh": ("b", "a"), "logs": ("c",)})


@pytest.mark.parametrize(
    ("label", "settings", "profile"),
    [
        (None, P, None),
        ("disabled", P, "disabled"),
        ("mesh", P, "mesh"),
        ("enabled", P, "enabled"),
        ("enabled", Settings(profiles={"mesh": ("b",)}), "unknown-profile"),
        ("Mesh", P, "unknown-profile"),
        ("unknown-profile", P, "unknown-profile"),
        ("", P, "unknown-profile"),
    ],
)
def test_route_is_the_chart_s_webhook_entries(
    label: str | None, settings: Settings, profile: str | None
) -> None:
    assert route(label, settings) == profile


def test_profiles_resolve_to_their_templates() -> None:
    assert profile_templates("mesh", "shop", P) == ("b", "a")
    assert profile_templates("enabled", "shop", P) == ("a",)
    assert P.routed_profiles == {"mesh": ("b", "a"), "logs": ("c",), "enabled": ("a",)}


@pytest.mark.parametrize(
    ("profile", "settings", "says"),
    [
        (
            "unknown-profile",
            P,
            "namespace 'shop' is labeled sidecar-injector.io/inject with a value that names no "
            "profile (kubectl sidecar-injector check, or explain, shows it); label it sidecar-injector.io/inject=<one of: enabled, logs, mesh, "
            "disabled>, remove the label, or set sidecar-injector.io/inject on the pod",
        ),
        ("typo", P, "namespace 'shop' asks for profile 'typo', which is not configured;"),
        (
            "enabled",
            Settings(),
            "namespace 'shop' is labeled sidecar-injector.io/inject=enabled, which asks for the "
            "default templates, but none are configured (--default-templates); label it "
            "sidecar-injector.io/inject=<one of: disabled>",
        ),
    ],
)
def test_an_unknown_profile_is_an_error_listing_the_profiles(
    profile: str, settings: Settings, says: str
) -> None:
    error = profile_templates(profile, "shop", settings)
    assert isinstance(error, InjectionError)
    assert error.reason == "profile_not_found"
    assert error.message.startswith(says)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("mesh", None),
        ("a-1", None),
        ("enabled", "reserved"),
        ("disabled", "reserved"),
        ("unknown-profile", "reserved"),
        ("true", "reserved"),
        ("false", "reserved"),
        ("Mesh", "DNS-1123"),
        ("-mesh", "DNS-1123"),
        ("x" * 64, "DNS-1123"),
        ("", "DNS-1123"),
    ],
)
def test_profile_names(name: str, problem: str | None) -> None:
    found = check_profile_name(name)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_disabled_namespaces_skip_even_annotated_pods() -> None:
    annotations = {"sidecar-injector.io/inject": "a"}
    assert pod_skip(annotations, "shop", P, "disabled") == "excluded_namespace"
    assert pod_skip(annotations, "shop", P, "mesh") is None


def test_a_pod_may_request_at_most_32_templates() -> None:
    key = "sidecar-injector.io/inject"
    names = requested({key: ",".join(f"t{i}" for i in range(32))}, S)
    assert isinstance(names, tuple) and len(names) == 32
    error = requested({key: ",".join(f"t{i}" for i in range(33))}, S)
    assert isinstance(error, InjectionError) and error.reason == "too_many_templates"
    assert error.message == f"{key} names 33 templates; at most 32 may be requested by one pod"


def test_an_override_for_a_requested_template_is_not_stray() -> None:
    annotations = {
        "sidecar-injector.io/inject": "log-shipper",
        "sidecar-injector.io/status": "{}",
        "sidecar-injector.io/log-shipper.logLevel": "debug",
        "other.io/log-shiper.logLevel": "debug",
    }
    assert stray_overrides(overrides(annotations, Settings()), ("log-shipper",), Settings()) == {}


def test_a_typo_of_a_requested_template_names_the_key_meant() -> None:
    annotations = {"sidecar-injector.io/log-shiper.logLevel": "debug"}
    [warning] = stray_overrides(
        overrides(annotations, Settings()), ("envoy", "log-shipper"), Settings()
    ).values()
    assert warning == (
        "annotation sidecar-injector.io/log-shiper.logLevel overrides template 'log-shiper', "
        "which this pod does not request (it requests envoy, log-shipper): did you mean "
        "sidecar-injector.io/log-shipper.logLevel?"
    )


def test_an_override_far_from_every_requested_template_has_no_effect() -> None:
    annotations = {"sidecar-injector.io/envoy.logLevel": "debug"}
    [warning] = stray_overrides(
        overrides(annotations, Settings()), ("log-shipper",), Settings()
    ).values()
    assert warning.endswith("(it requests log-shipper): it has no effect")


def test_when_only_the_override_names_a_template_that_exists_the_request_has_the_typo() -> None:
    annotations = {"sidecar-injector.io/log-shipper.logLevel": "debug"}
    [warning] = stray_overrides(
        overrides(annotations, Settings()), ("log-shiper",), Settings(), {"log-shipper"}
    ).values()
    assert warning.endswith("did you mean to request 'log-shipper' ('log-shiper' does not exist)?")


def test_stray_overrides_follow_the_annotation_prefix() -> None:
    settings = Settings(annotation_prefix="inject.example.com")
    annotations = {
        "inject.example.com/trace.rate": "1",
        "sidecar-injector.io/trace.rate": "1",
    }
    given = overrides(annotations, settings)
    [warning] = stray_overrides(given, ("log-shipper",), settings).values()
    assert warning.startswith("annotation inject.example.com/trace.rate ")


NAMES = st.sampled_from(["a", "ab", "log-shipper", "envoy", "x.y", ""])


@given(
    keys=st.lists(
        st.tuples(st.sampled_from(["sidecar-injector.io/", "other.io/", ""]), NAMES, NAMES),
        max_size=8,
    ),
    requested_=st.lists(NAMES.filter(bool), max_size=3, unique=True),
)
def test_one_warning_per_override_key_of_an_unrequested_template(
    keys: list[tuple[str, str, str]], requested_: list[str]
) -> None:
    annotations = {f"{scope}{template}.{param}": "v" for scope, template, param in keys}
    expected = [
        key
        for key in annotations
        if key.startswith("sidecar-injector.io/")
        and key.removeprefix("sidecar-injector.io/").partition(".")[0] not in requested_
    ]
    warnings = stray_overrides(overrides(annotations, Settings()), tuple(requested_), Settings())
    assert sorted(warnings) == sorted(expected)
    assert all(w.startswith(f"annotation {k} ") for k, w in warnings.items())
