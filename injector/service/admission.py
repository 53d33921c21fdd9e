"""AdmissionReview v1 in and out: parse a request body, turn a Decision into the answer."""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

import orjson

from injector.catalog import Catalog
from injector.engine import Decision, review
from injector.policy import Settings
from injector.service.config import OnError
from injector.service.http import BadReview
from injector.service.metrics import INTERNAL, Outcome
from injector.summary import SEPARATOR, bounded
from injector.types import AddOp
from injector.validation import Verdict

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
AUDIT_KEY = "injected-templates"


class Status(TypedDict):
    code: int
    message: str


class Response(TypedDict, total=False):
    uid: str
    allowed: bool
    warnings: list[str]
    status: Status


class Answer(NamedTuple):
    """The serialized AdmissionReview answer and what the log line and metrics say about it."""

    body: bytes
    outcome: Outcome
    reason: str
    requested: tuple[str, ...] = ()
    injected: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    profile: str | None = None


def parse(body: bytes) -> dict[str, Any]:
    """The `request` of an AdmissionReview v1 body; BadReview says what is wrong with it."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadReview(f"request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadReview("request body is not an AdmissionReview: expected a JSON object")
    if document.get("kind") != KIND or document.get("apiVersion") != API_VERSION:
        raise BadReview(
            f"expected kind {KIND} and apiVersion {API_VERSION}, got kind "
            f"{document.get('kind')!r} and apiVersion {document.get('apiVersion')!r}"
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise BadReview("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("the AdmissionReview request has no uid")
    for key, kind in (("kind", "an object"), ("object", "an object or null")):
        value = request.get(key)
        if not (isinstance(value, dict) or (value is None and key == "object")):
            raise BadReview(f"the AdmissionReview request's {key} must be {kind}")
    return request


def answer(
    request: Mapping[str, Any],
    catalog: Catalog,
    settings: Settings,
    on_error: OnError,
    profile: str | None = None,
) -> Answer:
    """Decide for the request, sent with its namespace's `profile` (None: the pod-annotation
    path), and encode the response, following --on-error on failures."""
    decision = review(request, catalog, settings, profile)
    uid: str = request["uid"]
    if decision.skip is not None:
        return Answer(_admitted(uid), "skipped", decision.skip)
    if decision.errors and on_error == "deny":
        return _deny(uid, decision)
    warnings: Sequence[str] = ()
    if decision.warnings or decision.errors:
        warnings = bounded([*decision.warnings, *[e.message for e in decision.errors]])
    body = _admitted(uid, decision.patch, decision.injected, warnings)
    if decision.errors:
        outcome: Outcome = "error"
        reason: str = decision.errors[0].reason
    else:
        outcome, reason = "injected", "ok"
    return Answer(
        body,
        outcome,
        reason,
        decision.requested,
        decision.injected if decision.patch else (),
        tuple(bounded([e.message for e in decision.errors])) if decision.errors else (),
        decision.profile,
    )


_ADMITTED = b'{"apiVersion":"%s","kind":"%s","response":{"uid":' % (
    API_VERSION.encode(),
    KIND.encode(),
)


def _admitted(
    uid: str,
    patch: Sequence[AddOp] = (),
    injected: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> bytes:
    """The answer admitting the pod, assembled from pre-encoded parts: the bytes orjson writes
    for it as one document (uid, allowed, patchType, patch, auditAnnotations, warnings), without
    turning the base64 patch into a str and serializing it a second time."""
    parts = [_ADMITTED, orjson.dumps(uid), b',"allowed":true']
    if patch:
        parts += (
            b',"patchType":"JSONPatch","patch":"',
            binascii.b2a_base64(orjson.dumps(patch), newline=False),
            b'","auditAnnotations":{"%s":' % AUDIT_KEY.encode(),
            orjson.dumps(",".join(injected)),
            b"}",
        )
    if warnings:
        parts += (b',"warnings":', orjson.dumps(warnings))
    parts.append(b"}}")
    return b"".join(parts)


def _deny(uid: str, decision: Decision) -> Answer:
    """Every problem in one message (kubectl shows it; bounded, like the warnings)."""
    messages = tuple(bounded([e.message for e in decision.errors]))
    response: Response = {
        "uid": uid,
        "allowed": False,
        "status": {"code": 400, "message": SEPARATOR.join(messages)},
    }
    if decision.warnings:
        response["warnings"] = bounded(decision.warnings)
    return Answer(
        _encode(response),
        "denied",
        decision.errors[0].reason,
        decision.requested,
        (),
        messages,
        decision.profile,
    )


def validation_answer(uid: str, verdict: Verdict | None) -> tuple[bytes, bool]:
    """The answer to a templates ConfigMap edit, and whether it is allowed. Errors and
    warnings are each bounded (the first ones, then "and N more")."""
    response: Response = {"uid": uid, "allowed": verdict is None or not verdict.errors}
    if verdict is not None and verdict.errors:
        message = SEPARATOR.join(bounded(verdict.errors))
        response["status"] = {"code": 400, "message": message}
    if verdict is not None and verdict.warnings:
        response["warnings"] = bounded(verdict.warnings)
    return _encode(response), response["allowed"]


def internal_error(uid: str, on_error: OnError) -> Answer:
    """The answer when deciding raised: no details leave the process, they are in the log."""
    message = f"sidecar-injector hit an internal error on request {uid}; its logs have the details"
    if on_error == "deny":
        response: Response = {
            "uid": uid,
            "allowed": False,
            "status": {"code": 500, "message": message + "; retry, or ask the cluster operator"},
        }
    else:
        response = {
            "uid": uid,
            "allowed": True,
            "warnings": [message + "; admitted without sidecars"],
        }
    return Answer(_encode(response), "error", INTERNAL, errors=(message,))


def _encode(response: Response) -> bytes:
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response})
