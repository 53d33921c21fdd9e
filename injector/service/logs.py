"""Logging: structlog lines on stdout (JSON or console); uvicorn's stdlib logs look the same."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO, TextIO

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
    global _direct  # noqa: PLW0603 - structlog's configuration is process-wide too
    out = stream if stream is not None else sys.stdout
    stamper = UTCStamper()
    # No merge_contextvars: nothing binds context variables, and the direct lines skip them.
    shared: list[Processor] = [structlog.processors.add_log_level, stamper]
    _direct = None
    if fmt == "json":
        # orjson and a bytes logger keep the canonical per-review line cheap.
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        ours: list[Processor] = [structlog.processors.format_exc_info, renderer]
        theirs: list[Processor] = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json_text),
        ]
        factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory(out.buffer)
    else:
        ours = theirs = [structlog.dev.ConsoleRenderer(colors=out.isatty())]
        factory = structlog.PrintLoggerFactory(out)
    processors = [*shared, *ours]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    if fmt == "json":
        _direct = DirectLines(processors, out.buffer, stamper, LEVELS[level] <= logging.INFO)
    _route_stdlib(level, out, shared, theirs)


def log_info(log: Any, event: str, fields: dict[str, Any]) -> None:
    """`log.info(event, **fields)`, for the lines logged on every request: written directly
    while the JSON pipeline of `configure` is in place, through structlog otherwise (the
    console format, or a test capturing the logs)."""
    direct = _direct
    # In place while structlog still renders with that pipeline: `configure` replaces it as a
    # whole, capture_logs swaps the processors inside the same list.
    if direct is not None and direct.processors[-1] is direct.renderer:
        direct.info(event, fields)
    else:
        log.info(event, **fields)


class DirectLines:
    """Info lines rendered and written in one step, byte for byte what the JSON pipeline of
    `configure` writes for them (fields, event, level, timestamp). structlog's generic steps
    (the lazy logger's lookup, three copies of the fields, the processor loop, the file lock)
    cost more than the rest of the per-review line. One write per line: the buffered stream
    serializes writes, so lines from other threads never interleave with it."""

    def __init__(
        self, processors: list[Processor], stream: BinaryIO, stamper: UTCStamper, enabled: bool
    ) -> None:
        self.processors = processors
        self.renderer = processors[-1]
        self.write = stream.write
        self.flush = stream.flush
        self.stamper = stamper
        self.enabled = enabled

    def info(self, event: str, fields: dict[str, Any]) -> None:
        """Write the line of `fields` (JSON values only; completed in place)."""
        if not self.enabled:
            return
        fields["event"] = event
        fields["level"] = "info"
        fields["timestamp"] = self.stamper.now()
        # Appending the newline is cheaper than orjson's option: keyword arguments cost more.
        self.write(orjson.dumps(fields) + b"\n")
        self.flush()


_direct: DirectLines | None = None


class UTCStamper:
    """`timestamp` as ISO 8601 UTC with microseconds, like structlog's TimeStamper(fmt="iso",
    utc=True) but formatting the date and time once per second: it runs on every review."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.second = -1
        self.prefix = ""

    def __call__(self, logger: object, method: str, event: EventDict) -> EventDict:
        event["timestamp"] = self.now()
        return event

    def now(self) -> str:
        now = self.clock()
        second = int(now)
        if second != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.second = second
        return f"{self.prefix}.{int((now - second) * 1_000_000):06d}Z"


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
