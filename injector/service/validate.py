"""POST /validate: a templates ConfigMap edit, judged as a reload would judge it, so that
`kubectl edit`/`apply` and GitOps syncs learn at once what a reload would refuse; and a
namespace's inject label, refused when it names no profile, so that a typo is caught when it is
typed rather than by the first denied pod."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import structlog
from starlette.types import Receive, Scope, Send

from injector.service.admission import parse, validation_answer
from injector.service.http import JSON_TYPE, Refused, read_review, refuse, respond
from injector.service.metrics import Metrics
from injector.service.state import State
from injector.summary import bounded
from injector.validation import Kind, Verdict, review, review_namespace, shown, subject

PATH = "/validate"
LOGGED_ERRORS = 5
"""The canonical line names the first problems; the denial itself carries more."""

log = structlog.get_logger("injector.service.validate")


class ValidateEndpoint:
    """One AdmissionReview of a ConfigMap or a Namespace in, allowed or denied out, never a
    500. Loading and test-rendering every template is CPU work of up to seconds for a large
    ConfigMap: it runs in a worker thread, one edit at a time, so admissions keep being answered
    meanwhile. A Namespace is judged inline: one label looked up among the profiles, and edit
    distances to a handful of names cut off after two edits (a value far longer than every name
    is rejected by its length alone), microseconds whatever the request carries; a hop to the
    worker thread would cost more, and namespace edits would queue behind a large ConfigMap."""

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
        self.limiter = anyio.CapacityLimiter(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = self.clock()
        try:
            request = await read_review(scope, receive, self.max_body_bytes, parse)
        except Refused as exc:
            await self._refuse(send, exc)
            return
        state = self.state
        kind = subject(request)
        verdict: Verdict | None = None
        if kind == "namespace":
            verdict = review_namespace(request, state.settings)
        elif kind == "configmap":
            serving = tuple(state.catalog.templates)
            verdict = await anyio.to_thread.run_sync(
                review, request, state.settings, serving, limiter=self.limiter
            )
        body, allowed = validation_answer(request["uid"], verdict)
        await respond(send, 200, JSON_TYPE, body)
        if kind is not None:  # anything else is allowed untouched: logged, not counted
            self.metrics.validated(kind, "allowed" if allowed else "denied")
        label = _label(request, state.settings.inject_key) if kind == "namespace" else None
        _log_validation(request, kind, verdict, allowed, self.clock() - started, label=label)

    async def _refuse(self, send: Send, refused: Refused) -> None:
        await refuse(send, refused)
        log.warning(
            "validation_request_refused",
            status=refused.status,
            reason=refused.reason,
            message=str(refused),
        )


def _label(request: dict[str, Any], key: str) -> str | None:
    """The namespace's inject label value as the log line shows it (not secret), if a string."""
    new = request.get("object")
    metadata = new.get("metadata") if isinstance(new, dict) else None
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    value = labels.get(key) if isinstance(labels, dict) else None
    return shown(value) if isinstance(value, str) else None


def _log_validation(
    request: dict[str, Any],
    kind: Kind | None,
    verdict: Verdict | None,
    allowed: bool,
    seconds: float,
    *,
    label: str | None,
) -> None:
    """The canonical line: who edited what, the result and the first problems; never the
    templates themselves. For a namespace, the inject label's value too."""
    user = request.get("userInfo")
    extra = {"label": label} if kind == "namespace" else {}
    log.info(
        "config_validation",
        uid=request["uid"],
        kind=kind,
        user=user.get("username") if isinstance(user, dict) else None,
        namespace=request.get("namespace"),
        name=request.get("name"),
        **extra,
        operation=request.get("operation"),
        dry_run=bool(request.get("dryRun")),
        result="allowed" if allowed else "denied",
        errors=bounded(verdict.errors[:LOGGED_ERRORS]) if verdict else [],
        error_count=len(verdict.errors) if verdict else 0,
        warnings=len(verdict.warnings) if verdict else 0,
        duration_ms=round(seconds * 1000, 3),
    )
