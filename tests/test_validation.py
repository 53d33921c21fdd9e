"""Judging a templates ConfigMap edit: every load error refuses it with its key and line, an
emptied set is refused, templates the profiles need but the edit lacks are warnings. Judging a
namespace's inject label: a value that names no profile is refused with what to type."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from injector.policy import Settings
from injector.summary import LIMIT, SEPARATOR, bounded
from injector.validation import Verdict, label_values, review, review_namespace, subject
from tests.test_loader import BROKEN, GOOD, HOSTILE

SETTINGS = Settings(default_templates=("good",), profiles={"mesh": ("proxy", "good")})


def edit(
    data: dict[str, str] | None = None,
    old: dict[str, str] | None = None,
    operation: str = "UPDATE",
    **fields: Any,
) -> dict[str, Any]:
    """An AdmissionReview request for the templates ConfigMap."""
    configmap: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t"}}
    request: dict[str, Any] = {
        "uid": "u",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "operation": operation,
        "object": {**configmap, "data": data} if data is not None else configmap,
        **fields,
    }
    if old is not None:
        request["oldObject"] = {**configmap, "data": old}
    return request


def judged(request: dict[str, Any], settings: Settings = SETTINGS) -> Verdict:
    verdict = review(request, settings)
    assert verdict is not None
    return verdict


@pytest.mark.parametrize(("text", "expected"), BROKEN + HOSTILE)
def test_every_load_error_refuses_the_edit_naming_key_and_line(text: str, expected: str) -> None:
    verdict = judged(edit({"good.yaml": GOOD, "t.yaml": text}, old={"good.yaml": GOOD}))
    assert verdict.errors, "a broken template must refuse the edit"
    assert all(error.startswith("t.yaml") for error in verdict.errors), verdict.errors
    assert any(expected in error for error in verdict.errors), verdict.errors


def test_a_valid_edit_is_allowed_without_findings() -> None:
    verdict = judged(edit({"good.yaml": GOOD, "proxy.yaml": GOOD}, old={"good.yaml": GOOD}))
    assert verdict == Verdict((), ())


def test_keys_that_are_not_templates_and_dot_keys() -> None:
    verdict = judged(edit({"good.yaml": GOOD, "proxy.yaml": GOOD, "notes.txt": "hi", ".k": "x"}))
    assert verdict.errors == ("notes.txt: not a template: keys must be named <template>.yaml",)


def test_an_edit_that_leaves_no_template_is_refused_but_a_new_empty_one_is_not() -> None:
    emptied = judged(edit({}, old={"good.yaml": GOOD, "proxy.yaml": GOOD}))
    assert emptied.errors == (
        "the edit removes every template (good, proxy); at least one must stay",
    )
    assert not judged(edit({}, operation="CREATE")).errors
    assert not judged(edit(None, old={}, operation="UPDATE")).errors


def test_removing_a_template_a_profile_or_the_defaults_need_is_a_warning() -> None:
    verdict = judged(edit({"proxy.yaml": GOOD}, old={"good.yaml": GOOD, "proxy.yaml": GOOD}))
    assert not verdict.errors
    assert verdict.warnings == (
        "the edit removes template 'good', which the default templates names: pods that rely "
        "on it will be denied until it is back",
        "the edit removes template 'good', which profile 'mesh' names: pods that rely on it "
        "will be denied until it is back",
    )
    created = judged(edit({"good.yaml": GOOD}, operation="CREATE"))
    assert created.warnings == (
        "the edit has no template 'proxy', which profile 'mesh' names: pods that rely on it "
        "will be denied until it is back",
    )


def test_binary_data_is_judged_like_data() -> None:
    request = edit({"proxy.yaml": GOOD})
    request["object"]["binaryData"] = {
        "good.yaml": base64.b64encode(GOOD.encode()).decode(),
        "bad.yaml": base64.b64encode(b"containers: [").decode(),
        "bin.yaml": "not base64!",
    }
    errors = judged(request).errors
    assert [e.split(":")[0] for e in errors] == ["bad.yaml", "bin.yaml"]
    assert "bin.yaml: cannot read: binaryData: " in errors[1]


@pytest.mark.parametrize(
    "request_",
    [
        {
            "uid": "u",
            "kind": {"group": "", "version": "v1", "kind": "Secret"},
            "operation": "UPDATE",
        },
        {"uid": "u", "kind": {"group": "x.io", "version": "v1", "kind": "ConfigMap"}},
        edit({"t.yaml": "broken: ["}, operation="DELETE"),
        edit({"t.yaml": "broken: ["}, operation="CONNECT"),
        edit({"t.yaml": "broken: ["}, subResource="status"),
    ],
)
def test_what_is_not_an_edit_of_a_configmap_is_left_alone(request_: dict[str, Any]) -> None:
    assert review(request_, SETTINGS) is None


def test_a_malformed_object_is_refused() -> None:
    request = edit({})
    request["object"] = "nope"
    assert judged(request).errors == ("the request has no ConfigMap object",)


def test_hostile_configmaps_get_bounded_answers() -> None:
    many = {f"t{i}.yaml": "containers: [\n" for i in range(10_000)}
    verdict = judged(edit(many, old={"good.yaml": GOOD}))
    assert len(verdict.errors) == 10_000
    message = SEPARATOR.join(bounded(verdict.errors))
    assert len(message.encode()) <= LIMIT and message.endswith(" more")
    huge = judged(edit({"t.yaml": "containers: [{name: s, image: '" + "x" * 900_000 + "'}]"}))
    assert not huge.errors
    bomb_text = next(text for text, expected in HOSTILE if "more than 100000" in expected)
    bomb = judged(edit({"t.yaml": bomb_text}))
    assert "more than 100000 values" in bomb.errors[0]
    unbroken = judged(edit({"t.yaml": "containers: [{name: s, image: '" + "x" * 5000}))
    assert len(SEPARATOR.join(bounded(unbroken.errors)).encode()) <= LIMIT


def test_a_configmap_created_again_empty_is_refused_while_templates_are_served() -> None:
    """Deleted and created again (kubectl replace --force, a GitOps Replace sync) with no
    template: a reload would refuse it, so the edit is refused too."""
    recreated = review(edit({}, operation="CREATE"), SETTINGS, serving=("good", "proxy"))
    assert recreated is not None
    assert recreated.errors == (
        "the edit removes every template (good, proxy); at least one must stay",
    )
    fresh = review(edit({}, operation="CREATE"), SETTINGS, serving=())
    assert fresh is not None and not fresh.errors


# --- namespace inject labels ---

KEY = "sidecar-injector.io/inject"
NO_DEFAULTS = Settings(profiles={"observability": ("proxy",), "payments": ("good",)})


def namespace(
    labels: Any = None,
    old: Any = None,
    operation: str = "UPDATE",
    name: str = "shop",
    **fields: Any,
) -> dict[str, Any]:
    """An AdmissionReview request for a Namespace with these labels (None: no labels map); an
    UPDATE's oldObject has the labels `old`, a CREATE's oldObject is null."""

    def obj(labels: Any) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name}
        if labels is not None:
            metadata["labels"] = labels
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}

    request: dict[str, Any] = {
        "uid": "u",
        "kind": {"group": "", "version": "v1", "kind": "Namespace"},
        "operation": operation,
        "name": name,
        "object": obj(labels),
        "oldObject": obj(old) if operation == "UPDATE" else None,
        **fields,
    }
    return request


def test_subject_names_what_is_judged() -> None:
    assert subject(edit({})) == "configmap"
    assert subject(namespace()) == "namespace"
    assert subject({"kind": {"group": "", "version": "v1", "kind": "Secret"}}) is None
    assert subject({"kind": {"group": "x.io", "version": "v1", "kind": "Namespace"}}) is None
    assert subject({"kind": "Namespace"}) is None
    assert subject({}) is None


def test_the_valid_values_are_the_routed_profiles_and_disabled() -> None:
    assert label_values(SETTINGS) == ["disabled", "enabled", "mesh"]
    assert label_values(NO_DEFAULTS) == ["disabled", "observability", "payments"]
    assert label_values(Settings()) == ["disabled"]


def test_a_typo_is_refused_naming_namespace_value_valid_values_and_the_nearest() -> None:
    settings = Settings(default_templates=("good",), profiles={"observability": ("proxy",)})
    verdict = review_namespace(namespace({KEY: "observabilty"}, old={}), settings)
    assert verdict == Verdict(
        (
            'namespace "shop": label sidecar-injector.io/inject=observabilty names no profile; '
            'valid values: disabled, enabled, observability (did you mean "observability"?)',
        ),
        (),
    )


def test_a_value_far_from_every_name_gets_no_suggestion() -> None:
    verdict = review_namespace(namespace({KEY: "shop"}, operation="CREATE"), NO_DEFAULTS)
    assert verdict is not None
    assert verdict.errors == (
        'namespace "shop": label sidecar-injector.io/inject=shop names no profile; '
        "valid values: disabled, observability, payments",
    )


def test_enabled_without_default_templates_is_refused_saying_why() -> None:
    verdict = review_namespace(namespace({KEY: "enabled"}, operation="CREATE"), NO_DEFAULTS)
    assert verdict is not None
    assert verdict.errors == (
        'namespace "shop": label sidecar-injector.io/inject=enabled asks for the default '
        "templates, but none are configured (--default-templates); valid values: disabled, "
        "observability, payments",
    )
    assert review_namespace(namespace({KEY: "enabled"}, operation="CREATE"), SETTINGS) is None


@pytest.mark.parametrize("value", ["disabled", "observability", "payments"])
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_every_valid_value_is_allowed(value: str, operation: str) -> None:
    assert review_namespace(namespace({KEY: value}, operation=operation), NO_DEFAULTS) is None


@pytest.mark.parametrize(
    "request_",
    [
        namespace({KEY: "typo"}, old={KEY: "typo"}),  # unchanged: this edit did not do it
        namespace({"team": "a"}, old={KEY: "typo"}),  # the label removed
        namespace(None, old={KEY: "typo"}),
        namespace(None, operation="CREATE"),  # no labels at all
        namespace({}, operation="CREATE"),
        namespace({"other.io/inject": "typo", "team": "x"}, operation="CREATE"),
        namespace({KEY: "typo"}, operation="DELETE"),
        namespace({KEY: "typo"}, subResource="status"),
        namespace({KEY: "typo"}, subResource="finalize"),
    ],
)
def test_what_does_not_set_a_bad_label_is_allowed(request_: dict[str, Any]) -> None:
    assert review_namespace(request_, NO_DEFAULTS) is None


def test_an_update_without_old_object_judges_the_label() -> None:
    request = namespace({KEY: "paymnts"})
    del request["oldObject"]
    verdict = review_namespace(request, NO_DEFAULTS)
    assert verdict is not None and verdict.errors[0].endswith('(did you mean "payments"?)')
    request["oldObject"] = {"metadata": {"labels": "not a map"}}
    assert review_namespace(request, NO_DEFAULTS) == verdict


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({**namespace(), "object": None}, "the request has no Namespace object"),
        (
            namespace(["not", "a", "map"], operation="CREATE"),
            'namespace "shop": metadata.labels must be a map of strings',
        ),
        (
            {**namespace(), "object": {"metadata": "nope"}},
            'namespace "shop": metadata.labels must be a map of strings',
        ),
        (
            namespace({KEY: 42}, operation="CREATE"),
            'namespace "shop": label sidecar-injector.io/inject must be a string',
        ),
        (
            namespace({KEY: ""}, operation="CREATE", name=""),
            'namespace (unnamed): label sidecar-injector.io/inject="" names no profile; '
            "valid values: disabled, observability, payments",
        ),
    ],
)
def test_malformed_namespaces_are_refused_saying_what_is_wrong(
    request_: dict[str, Any], error: str
) -> None:
    assert review_namespace(request_, NO_DEFAULTS) == Verdict((error,), ())


def test_hostile_labels_are_cheap_and_shown_bounded() -> None:
    many = {f"example.com/l{i}": "x" * 63 for i in range(10_000)}
    assert review_namespace(namespace({**many, KEY: "payments"}), NO_DEFAULTS) is None
    verdict = review_namespace(namespace({KEY: "p" * 1_000_000}), NO_DEFAULTS)
    assert verdict is not None
    [error] = verdict.errors
    assert len(error) < 300 and f"inject={'p' * 100}..." in error
    strange = review_namespace(namespace({KEY: "a b;c"}), NO_DEFAULTS)
    assert strange is not None and 'inject="a b;c" names no profile' in strange.errors[0]


def test_the_configmap_review_leaves_namespaces_alone_and_the_other_way_round() -> None:
    assert review(namespace({KEY: "typo"}), SETTINGS) is None
    assert review_namespace(edit({"t.yaml": "broken: ["}), SETTINGS) is None
