"""The AdmissionReview of a Pod, decoded partially: only what the engine, the answer and the log
line read, typed as the kube-apiserver sends it; everything else in the body is skipped
unparsed. Parsing the whole 6 KB review into Python objects (and freeing them) was a third of
an admission's instructions.

The result is the plain `request` dict the generic parse would give, minus the fields nobody
reads. A body of any other shape (a wrong type, null instead of a list, a big integer, invalid
JSON or UTF-8...) is not decoded here: the caller then parses it generically, which either
reads it the way it always has or says exactly what is wrong with it. The skipped values are
checked as JSON but not converted, so one kind of body is taken here that the generic parse
refuses: a number too large for a double (1e400) in a field nobody reads. The kube-apiserver
never sends one: it re-encodes the Pod it decoded."""

from __future__ import annotations

from typing import Any, Literal, Required, TypedDict

import msgspec


class _Named(TypedDict, total=False):
    name: str


class _Mount(TypedDict, total=False):
    mountPath: str


class _Container(TypedDict, total=False):
    name: str
    env: list[_Named]
    volumeMounts: list[_Mount]


class _Spec(TypedDict, total=False):
    containers: list[_Container]
    initContainers: list[_Named]
    ephemeralContainers: list[_Named]
    volumes: list[_Named]
    imagePullSecrets: list[_Named]
    serviceAccountName: str
    serviceAccount: str


class _Metadata(TypedDict, total=False):
    name: str
    generateName: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


class _Pod(TypedDict, total=False):
    metadata: _Metadata
    spec: _Spec


class _Kind(TypedDict, total=False):
    group: str
    kind: str


class _Request(TypedDict, total=False):
    uid: Required[str]
    kind: Required[_Kind]
    subResource: str
    operation: str
    namespace: str
    name: str
    dryRun: bool
    object: _Pod | None


class _Review(TypedDict):
    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: _Request


_DECODER = msgspec.json.Decoder(_Review)


def pod_request(body: bytes) -> dict[str, Any] | None:
    """The review's `request` with what is read of it, or None when the body is not a
    well-formed AdmissionReview v1 of the usual shape."""
    if not body.isascii():
        try:  # skipped strings are not checked for UTF-8; the generic parser refuses it
            body.decode()
        except UnicodeDecodeError:
            return None
    try:
        review = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    request: dict[str, Any] = review["request"]  # type: ignore[assignment]
    return request if request["uid"] else None
