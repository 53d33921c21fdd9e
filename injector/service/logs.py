"""Logging: structlog lines on stdout (JSON or console); uvicorn's stdlib logs look the same."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor

from injector.service.config import LogFormat, LogLevel

LEVELS: dict[LogLevel, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: LogLevel, fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Set up structlog and the stdlib root logger once, at start-up."""
    out = stream if stream is not None else sys.stdout
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UTCStamper(),
    ]
    if fmt == "json":
        # orjson and a bytes logger keep the canonical per-review line cheap.
        ours: list[Processor] = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        theirs: list[Processor] = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json_text),
        ]
        factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory(out.buffer)
    else:
        ours = theirs = [structlog.dev.ConsoleRenderer(colors=out.isatty())]
        factory = structlog.PrintLoggerFactory(out)
    structlog.configure(
        processors=[*shared, *ours],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _route_stdlib(level, out, shared, theirs)


class UTCStamper:
    """`timestamp` as ISO 8601 UTC with microseconds, like structlog's TimeStamper(fmt="iso",
    utc=True) but formatting the date and time once per second: it runs on every review."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.second = -1
        self.prefix = ""

    def __call__(self, logger: object, method: str, event: EventDict) -> EventDict:
        now = self.clock()
        second = int(now)
        if second != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.second = second
        event["timestamp"] = f"{self.prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event


def _json_text(event: EventDict, **_: object) -> str:
    """The same compact JSON as our own lines, as the text the stdlib handler writes."""
    return orjson.dumps(event, default=str).decode()


LIFECYCLE = logging.WARNING
"""uvicorn's own INFO lines ("Started server process", "Shutting down", ...) repeat what the
service's `listening`, `shutdown_started` and `stopped` lines say, once per server (two: the
webhook and the ops port); its warnings and errors are kept."""


def _route_stdlib(
    level: LogLevel, out: TextIO, shared: list[Processor], renderer: list[Processor]
) -> None:
    """uvicorn (and any library) logs through the stdlib: render it like our own lines."""
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(LEVELS[level])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.error").setLevel(max(LEVELS[level], LIFECYCLE))
