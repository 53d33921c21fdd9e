"""The HTTP side of an admission endpoint: method, Content-Type, a bounded body, one-line 4xx
refusals. Shared by /mutate and /validate, which differ only in what they answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from injector.service.metrics import RequestReason

JSON_TYPE = b"application/json"
_TEXT = b"text/plain; charset=utf-8"


class Refused(Exception):
    """An HTTP-level refusal: the request never became a review."""

    def __init__(self, status: int, reason: RequestReason | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class BadReview(ValueError):
    """The body is not an AdmissionReview v1 request: an HTTP 400, not an admission answer."""


async def read_review(
    scope: Scope,
    receive: Receive,
    max_body_bytes: int,
    decode: Callable[[bytes], dict[str, Any]],
) -> dict[str, Any]:
    """The `request` of a POSTed AdmissionReview, checked, read within the limit and decoded;
    Refused otherwise (a BadReview from `decode` is a 400)."""
    check_request(scope["method"], scope["headers"], max_body_bytes)
    body = await read_body(receive, max_body_bytes)
    try:
        return decode(body)
    except BadReview as exc:
        raise Refused(400, "invalid_request", str(exc)) from None


def check_request(method: str, headers: list[tuple[bytes, bytes]], max_body_bytes: int) -> None:
    """A POST of JSON whose announced length is within the limit; Refused otherwise."""
    if method != "POST":
        raise Refused(405, None, "use POST with an AdmissionReview v1 body")
    content_type = b""
    length = b""
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = value
    media = content_type.split(b";", 1)[0].strip().lower()
    if media != JSON_TYPE:
        raise Refused(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {content_type.decode('latin-1')!r}",
        )
    if length.isdigit() and int(length) > max_body_bytes:
        raise too_large(max_body_bytes)


async def read_body(receive: Receive, max_body_bytes: int) -> bytes:
    """The whole body, refused as soon as it grows past the limit."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise Refused(400, "invalid_request", "the client disconnected")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_body_bytes:
            raise too_large(max_body_bytes)
        more = message.get("more_body", False)
        if not more and not chunks:
            return chunk  # the usual case: the whole body in one message
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(max_body_bytes: int) -> Refused:
    return Refused(
        413, "body_too_large", f"request body is larger than --max-body-bytes={max_body_bytes}"
    )


async def refuse(send: Send, refused: Refused) -> None:
    """The one-line text answer of a refusal."""
    extra = []
    if refused.status == 405:
        extra.append((b"allow", b"POST"))
    if refused.status == 413:
        # The rest of the body was never read: the connection cannot be reused.
        extra.append((b"connection", b"close"))
    await respond(send, refused.status, _TEXT, str(refused).encode() + b"\n", extra)


async def respond(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
