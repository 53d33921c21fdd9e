"""POST /mutate as a plain ASGI callable: HTTP checks, bounded body read, answer, log, metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from starlette.types import Receive, Scope, Send

from injector.service.admission import Answer, answer, internal_error, parse
from injector.service.http import JSON_TYPE, Refused, read_review, refuse, respond
from injector.service.logs import log_info
from injector.service.metrics import Metrics
from injector.service.podreview import pod_request
from injector.service.state import State

PATH = "/mutate"
PROFILE_PATH = PATH + "/"
"""`/mutate/<profile>`: pods of namespaces labeled `<prefix>/inject=<profile>`."""
log = structlog.get_logger("injector.service.mutate")


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
            request = await read_review(scope, receive, self.max_body_bytes, _decode)
        except Refused as exc:
            await self._refuse(send, exc, started)
            return
        path: str = scope["path"]
        result = self._answer(request, None if path == PATH else path[len(PROFILE_PATH) :])
        await respond(send, 200, JSON_TYPE, result.body)
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

    async def _refuse(self, send: Send, refused: Refused, started: float) -> None:
        await refuse(send, refused)
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


def _decode(body: bytes) -> dict[str, Any]:
    return pod_request(body) or parse(body)


def _log_review(request: dict[str, Any], result: Answer, seconds: float) -> None:
    """The canonical line: who asked, what was decided, how long it took; never the pod spec."""
    pod = request.get("object")
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    if not isinstance(metadata, dict):
        metadata = {}
    log_info(
        log,
        "admission",
        {
            "uid": request["uid"],
            "namespace": request.get("namespace") or metadata.get("namespace"),
            "pod": request.get("name") or metadata.get("name") or metadata.get("generateName"),
            "operation": request.get("operation"),
            "dry_run": bool(request.get("dryRun")),
            "profile": result.profile,
            "requested": result.requested,
            "injected": result.injected,
            "outcome": result.outcome,
            "reason": result.reason,
            "errors": result.errors,
            "duration_ms": round(seconds * 1000, 3),
        },
    )
