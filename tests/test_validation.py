"""Judging a templates ConfigMap edit: every load error refuses it with its key and line, an
emptied set is refused, templates the profiles need but the edit lacks are warnings."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from injector.policy import Settings
from injector.summary import LIMIT, SEPARATOR, bounded
from injector.validation import Verdict, review
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
