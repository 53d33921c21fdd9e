"""The precedence of the pod's annotation over its namespace's profile, as a property: for any
annotation and namespace label, routing plus the engine's decision equal a small model."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from injector.engine import decide
from injector.policy import Settings, route
from tests.helpers import catalog

CATALOG = catalog(
    a="containers: [{name: sa, image: 'a:1'}]",
    b="containers: [{name: sb, image: 'b:1'}]",
    c="containers: [{name: sc, image: 'c:1'}]",
)
KEY = "sidecar-injector.io/inject"
NAMES = ["a", "b", "c", "nope"]

inject_values = st.one_of(
    st.none(),
    st.sampled_from(["", "  ", "false", "FALSE", " False ", "true", " TRUE ", ","]),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(", ".join),
)
labels = st.one_of(
    st.none(), st.sampled_from(["disabled", "enabled", "mesh", "logs", "typo", "unknown-profile"])
)
settings = st.builds(
    lambda profiles, defaults: Settings(default_templates=defaults, profiles=profiles),
    st.dictionaries(
        st.sampled_from(["mesh", "logs", "obs"]),
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True).map(tuple),
        max_size=3,
    ),
    st.sampled_from([(), ("a",), ("c", "b")]),
)

Expected = tuple[str, Any, str | None]
"""("skip", reason, None), ("inject", templates, profile) or ("error", reasons, profile)."""


def model(annotation: str | None, label: str | None, settings: Settings) -> Expected:
    """The rules in plain words: a disabled namespace gets nothing; the pod's own annotation
    decides alone when present; else the namespace's profile; `enabled` is the default set."""
    if label == "disabled":
        return ("skip", "excluded_namespace", None)
    if annotation is not None:
        value = annotation.strip().lower()
        if value in ("", "false"):
            return ("skip", "not_requested", None)
        if value == "true":
            if not settings.default_templates:
                return ("error", ["no_default_templates"], None)
            return _templates(settings.default_templates, None)
        names = [n.strip() for n in annotation.split(",") if n.strip()]
        if not names:
            return ("skip", "not_requested", None)
        return _templates(tuple(dict.fromkeys(names)), None)
    if label is None:
        return ("skip", "not_requested", None)
    profiles = dict(settings.profiles)
    if settings.default_templates:
        profiles["enabled"] = settings.default_templates
    if label not in profiles:
        return ("error", ["profile_not_found"], "unknown-profile")
    return _templates(profiles[label], label)


def _templates(names: tuple[str, ...], profile: str | None) -> Expected:
    missing = [n for n in names if n not in CATALOG.templates]
    if missing:
        return ("error", ["template_not_found"] * len(missing), profile)
    return ("inject", names, profile)


@given(inject_values, labels, settings)
def test_decisions_follow_the_precedence_rules(
    annotation: str | None, label: str | None, settings: Settings
) -> None:
    metadata: dict[str, Any] = {"name": "p"}
    if annotation is not None:
        metadata["annotations"] = {KEY: annotation}
    pod = {"metadata": metadata, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    decision = decide(pod, "shop", CATALOG, settings, route(label, settings))
    kind, what, profile = model(annotation, label, settings)
    if kind == "skip":
        assert decision.skip == what and not decision.patch
        return
    assert decision.profile == profile
    if kind == "error":
        assert [e.reason for e in decision.errors] == what
        return
    assert not decision.errors and decision.injected == what
    last = decision.patch[-1]
    status = json.loads(
        last["value"]
        if last["path"] != "/metadata/annotations"
        else last["value"]["sidecar-injector.io/status"]
    )
    assert [t["name"] for t in status["templates"]] == list(what)
    assert status.get("profile") == profile
