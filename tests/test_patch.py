from __future__ import annotations

from typing import Any

import pytest

from injector.patch import Injection, add, build, escape
from injector.render import Const
from injector.template import Template


@pytest.mark.parametrize(
    ("key", "escaped"),
    [("a", "a"), ("a/b", "a~1b"), ("a~b", "a~0b"), ("~/", "~0~1"), ("~1", "~01")],
)
def test_rfc6901_escaping(key: str, escaped: str) -> None:
    assert escape(key) == escaped


def injection(**body: Any) -> Injection:
    template = Template("t", "d", "", {}, (), (), (), (), Const(body), Const(body))
    return Injection(template, template.render({}, {}))


def paths(pod: dict[str, Any], *injections: Injection) -> list[str]:
    ops, _ = build(pod, injections, "p/status", "{}")
    return [op["path"] for op in ops]


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"annotations": {}}, "spec": {"containers": [{"name": "app"}], **spec}}


def test_absent_arrays_and_maps_are_added_whole() -> None:
    one = injection(
        initContainers=[{"name": "i"}],
        volumes=[{"name": "v"}],
        env=[{"name": "E"}],
        volumeMounts=[{"name": "v", "mountPath": "/v"}],
        imagePullSecrets=[{"name": "s"}],
        labels={"l": "x"},
    )
    assert paths(pod(), one) == [
        "/spec/initContainers",
        "/spec/volumes",
        "/spec/containers/0/env",
        "/spec/containers/0/volumeMounts",
        "/spec/imagePullSecrets",
        "/metadata/labels",
        "/metadata/annotations/p~1status",
    ]


def test_present_arrays_are_appended_and_init_containers_prepended() -> None:
    first = injection(containers=[{"name": "c1"}], initContainers=[{"name": "i1"}])
    second = injection(containers=[{"name": "c2"}], initContainers=[{"name": "i2"}])
    assert paths(pod(initContainers=[]), first, second) == [
        "/spec/containers/-",
        "/spec/containers/-",
        "/spec/initContainers/0",
        "/spec/initContainers/1",
        "/metadata/annotations/p~1status",
    ]


def test_the_status_annotation_is_last_and_cannot_be_set_by_a_template() -> None:
    ops, _ = build(
        pod(), [injection(annotations={"p/status": "forged", "a": "b"})], "p/status", "real"
    )
    assert ops[-1] == add("/metadata/annotations/p~1status", "real")
    assert [op["path"] for op in ops] == [
        "/metadata/annotations/a",
        "/metadata/annotations/p~1status",
    ]


def test_missing_target_containers_are_warned_about() -> None:
    body = {"env": [{"name": "E"}]}
    template = Template("t", "d", "", {}, ("api", "app"), (), (), (), Const(body), Const(body))
    ops, warnings = build(pod(), [Injection(template, template.render({}, {}))], "s", "{}")
    assert warnings == [
        "template 't': targetContainers api not found in the pod; nothing added to them"
    ]
    assert ops[0]["path"] == "/spec/containers/0/env"
