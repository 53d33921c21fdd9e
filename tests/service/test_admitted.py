"""The admitting answer assembled from parts is the document orjson would write whole."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from injector.service.admission import _admitted
from injector.types import AddOp

PATCH: list[AddOp] = [
    {"op": "add", "path": "/spec/containers/-", "value": {"name": "s", "args": ['a"b', "ü"]}},
    {"op": "add", "path": "/metadata/annotations/a~1b", "value": '{"templates":[]}'},
]


@pytest.mark.parametrize("uid", ["705ab4f5-6393-11e8-b7cc-42010a800002", 'quo"te \\ ünï'])
@pytest.mark.parametrize("patch", [[], PATCH])
@pytest.mark.parametrize("warnings", [[], ["template 'x': kept \"it\"", "and 2 more"]])
def test_same_bytes_as_the_whole_document(
    uid: str, patch: list[AddOp], warnings: list[str]
) -> None:
    injected = ("log-shipper", "trace-agent") if patch else ()
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(patch)).decode("ascii")
        response["auditAnnotations"] = {"injected-templates": ",".join(injected)}
    if warnings:
        response["warnings"] = warnings
    whole = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    assert _admitted(uid, patch, injected, warnings) == orjson.dumps(whole)
