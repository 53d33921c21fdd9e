"""POST /mutate as a plain ASGI callable: HTTP checks, bounded body read, answer, log, metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from starlette.types import Receive, Scope, Send

from injector.service.admission import Answer, BadReview, answer, internal_error, parse
from injector.service.metrics import Metrics, RequestReason
from injector.service.state import State

PATH = "/mutate"
PROFILE_PATH = PATH + "/"
"""`/mutate/<profile>`: pods of namespaces labeled `<prefix>/inject=<profile>`."""
JSON_TYPE = b"application/json"
_TEXT = b"text/plain; charset=utf-8"

log = structlog.get_logger("injector.service.mutate")


class Refused(Exception):
    """An HTTP-level refusal: the request never became a review."""

    def __init__(self, status: int, reason: RequestReason | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class MutateEndpoint:
    """The webhook: one AdmissionReview in, one answer out, never a 500."""

    def __init__(
        self,
        state: State,
        metrics: Metrics,
        max_body_bytes: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = self.clock()
        try:
            if scope["method"] != "POST":
                raise Refused(405, None, "use POST with an AdmissionReview v1 body")
            self._check_headers(scope["headers"])
            request = parse(await self._read_body(receive))
        except Refused as exc:
            await self._refuse(send, exc, started)
            return
        except BadReview as exc:
            await self._refuse(send, Refused(400, "invalid_request", str(exc)), started)
            return
        path: str = scope["path"]
        result = self._answer(request, None if path == PATH else path[len(PROFILE_PATH) :])
        await _respond(send, 200, JSON_TYPE, result.body)
        seconds = self.clock() - started
        self.metrics.answered(result.outcome, result.reason, seconds)
        if result.injected:
            self.metrics.injected(result.injected)
        _log_review(request, result, seconds)

    def _answer(self, request: dict[str, Any], profile: str | None) -> Answer:
        state = self.state
        try:
            return answer(request, state.catalog, state.settings, state.on_error, profile)
        except Exception:
            log.exception("admission_internal_error", uid=request["uid"])
            return internal_error(request["uid"], state.on_error)

    def _check_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
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
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise self._too_large()

    async def _read_body(self, receive: Receive) -> bytes:
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
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> Refused:
        return Refused(
            413,
            "body_too_large",
            f"request body is larger than --max-body-bytes={self.max_body_bytes}",
        )

    async def _refuse(self, send: Send, refused: Refused, started: float) -> None:
        extra = []
        if refused.status == 405:
            extra.append((b"allow", b"POST"))
        if refused.status == 413:
            # The rest of the body was never read: the connection cannot be reused.
            extra.append((b"connection", b"close"))
        await _respond(send, refused.status, _TEXT, str(refused).encode() + b"\n", extra)
        if refused.reason is None:
            return
        seconds = self.clock() - started
        self.metrics.answered("error", refused.reason, seconds)
        log.warning(
            "admission_request_refused",
            status=refused.status,
            reason=refused.reason,
            message=str(refused),
            duration_ms=round(seconds * 1000, 3),
        )


async def _respond(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


def _log_review(request: dict[str, Any], result: Answer, seconds: float) -> None:
    """The canonical line: who asked, what was decided, how long it took; never the pod spec."""
    pod = request.get("object")
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    if not isinstance(metadata, dict):
        metadata = {}
    log.info(
        "admission",
        uid=request["uid"],
        namespace=request.get("namespace") or metadata.get("namespace"),
        pod=request.get("name") or metadata.get("name") or metadata.get("generateName"),
        operation=request.get("operation"),
        dry_run=bool(request.get("dryRun")),
        profile=result.profile,
        requested=result.requested,
        injected=result.injected,
        outcome=result.outcome,
        reason=result.reason,
        errors=result.errors,
        duration_ms=round(seconds * 1000, 3),
    )
