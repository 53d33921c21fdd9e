"""Rendering with the defaults skips the output checks only where the load-time test render
already made them: the checked sections (env, labels) must not depend on the pod."""

from __future__ import annotations

import re

import pytest

from injector.render import RenderError
from injector.template import SECTIONS, Rendered, _sections
from tests.helpers import VIEW, template

CONSTANT = """\
containers: [{name: s, image: "busybox", args: ["{{ pod.name }}"]}]
env: [{name: MODE, value: "{{ params.mode }}"}]
labels: {tier: "{{ params.mode }}"}
parameters: {mode: {type: string, default: fast}}
"""


def test_pod_independent_sections_are_checked_once_at_load() -> None:
    loaded = template(CONSTANT)
    assert loaded._default_plan.checked
    rendered = loaded.render(VIEW, {})
    assert rendered.labels == {"tier": "fast"}
    assert rendered.containers[0]["args"] == ["web-1"]


@pytest.mark.parametrize(
    ("text", "pod", "message"),
    [
        (
            'labels: {app: "{{ pod.labels.app }}"}\n',
            {**VIEW, "labels": {"app": "not a label value!"}},
            "label value 'not a label value!' is not valid",
        ),
        (
            'env: [{name: "{{ pod.labels.app }}", value: "1"}]\n',
            {**VIEW, "labels": {"app": ""}},
            "env name renders empty",
        ),
    ],
)
def test_pod_dependent_sections_are_checked_per_pod(
    text: str, pod: dict[str, object], message: str
) -> None:
    loaded = template(text)
    assert not loaded._default_plan.checked
    with pytest.raises(RenderError, match=message):
        loaded.render(pod, {})


def test_sections_name_the_fields_of_rendered_in_order() -> None:
    assert tuple(_sections({key: key for key in SECTIONS})) == SECTIONS


def test_the_sections_are_renderings_fields_in_order() -> None:
    fields = tuple(re.sub(r"_(\w)", lambda m: m.group(1).upper(), f) for f in Rendered._fields)
    assert fields == SECTIONS
