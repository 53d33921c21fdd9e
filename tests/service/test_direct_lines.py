"""The per-review line written directly is byte for byte what the JSON pipeline writes, and
gives way to structlog whenever that pipeline is not the one in place."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from injector.service import logs
from injector.service.config import LogLevel

FIELDS = {
    "uid": "705ab4f5",
    "namespace": "shop",
    "pod": "shop-api-",
    "operation": "CREATE",
    "dry_run": False,
    "profile": None,
    "requested": ("log-shipper", "trace-agent"),
    "injected": ("log-shipper",),
    "outcome": "error",
    "reason": "template_not_found",
    "errors": ("template 'x' not found; \"quoted\" ünïcode",),
    "duration_ms": 0.123,
}
STAMP = re.compile(rb'"timestamp":"[0-9T:.-]+Z"')


Configure = Callable[..., io.BytesIO]


@pytest.fixture
def configured() -> Iterator[Configure]:
    """Run `configure` into a buffer; afterwards put structlog and the root logger back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.BytesIO()

    def setup(level_name: LogLevel = "info") -> io.BytesIO:
        logs.configure(level_name, "json", io.TextIOWrapper(buffer, write_through=True))
        return buffer

    try:
        yield setup
    finally:
        structlog.reset_defaults()
        logs._direct = None
        root.handlers, root.level = handlers, level


def test_the_direct_line_is_the_pipeline_line(configured: Configure) -> None:
    buffer = configured()
    log = structlog.get_logger("test")
    log.info("admission", **FIELDS)
    logs.log_info(log, "admission", dict(FIELDS))
    through_structlog, direct = buffer.getvalue().splitlines(keepends=True)
    assert STAMP.sub(b"", direct) == STAMP.sub(b"", through_structlog)
    assert direct.endswith(b'Z"}\n')


def test_below_the_configured_level_nothing_is_written(configured: Configure) -> None:
    buffer = configured("warning")
    logs.log_info(structlog.get_logger("test"), "admission", dict(FIELDS))
    assert buffer.getvalue() == b""


def test_captured_logs_still_see_the_line(configured: Configure) -> None:
    buffer = configured()
    with capture_logs() as captured:
        logs.log_info(structlog.get_logger("test"), "admission", dict(FIELDS))
    assert captured == [{**FIELDS, "event": "admission", "log_level": "info"}]
    assert buffer.getvalue() == b""
    logs.log_info(structlog.get_logger("test"), "admission", dict(FIELDS))
    assert buffer.getvalue().startswith(b'{"uid":"705ab4f5"')


def test_without_the_json_pipeline_structlog_writes_it() -> None:
    with capture_logs() as captured:
        logs.log_info(structlog.get_logger("test"), "admission", {"uid": "u"})
    assert captured == [{"uid": "u", "event": "admission", "log_level": "info"}]
