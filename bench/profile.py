"""Where the server's CPU goes under load: py-spy (installed into the venv on demand, pinned)
samples the running service from outside, so the server runs its normal code at normal speed.
The collapsed stacks are kept in bench/out/; a summary by component and by function goes into
the report."""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import tools
from bench.servers import BenchError, Server

RATE = 250  # samples per second

# Which part of the stack a leaf frame belongs to, by its file path (first match wins).
# py-spy names files relative to their sys.path entry: `injector/engine.py`, `ssl.py`.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("(asyncio/runners.py", "uvloop in C: sockets, TLS records, HTTP parsing, scheduling"),
    (
        "(injector/service/protocol.py",
        "the answer's one write: TLS record, send(2) (uvicorn's two before)",
    ),
    ("(injector/service/", "injector.service: HTTP checks, AdmissionReview in/out, log, metrics"),
    ("(injector/", "injector: decide, render, patch"),
    ("(structlog/", "structlog: the canonical log line"),
    ("(logging/", "stdlib logging"),
    ("(prometheus_client/", "prometheus_client: metric updates"),
    ("(starlette/", "starlette: routing, middleware"),
    ("(uvicorn/", "uvicorn: HTTP protocol, ASGI messages"),
    ("(jinja2/", "jinja2"),
    ("(ssl.py", "ssl.py: TLS writes"),
    ("(asyncio/", "asyncio"),
    ("(concurrent/futures/", "thread pool (file-watch polls; includes waiting for the GIL)"),
    ("(threading.py", "threads"),
)
PROCESS_FRAMES = (
    "(<frozen runpy>",
    "(injector/service/__main__.py",
    "(injector/service/main.py",
    "(injector/service/runner.py",
    "(asyncio/runners.py",
)
"""Frames every sample goes through: left out of the inclusive table."""
OTHER = "other"


@dataclass
class Profile:
    samples: int
    seconds: float
    components: list[tuple[str, float]] = field(default_factory=list)  # share of samples
    self_top: list[tuple[str, float]] = field(default_factory=list)
    inclusive_top: list[tuple[str, float]] = field(default_factory=list)
    stacks_file: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record(server: Server, seconds: int, out: Path) -> Profile:
    """Sample `server` for `seconds` (the caller keeps it under load meanwhile)."""
    argv = [
        tools.py_spy(),
        "record",
        f"--pid={server.pid}",
        f"--duration={seconds}",
        f"--rate={RATE}",
        "--format=raw",
        f"--output={out}",
    ]
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=seconds + 60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"py-spy failed: {exc}") from None
    return summarize(out.read_text(), seconds, out)


def summarize(collapsed: str, seconds: float, out: Path) -> Profile:
    """Shares of samples by component (of the leaf frame) and by function."""
    components: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        components[_component(leaf)] += count
        own[_short(leaf)] += count
        for name in {_short(f) for f in frames}:
            inclusive[name] += count
    share = 1 / max(total, 1)
    return Profile(
        samples=total,
        seconds=seconds,
        components=[(name, n * share) for name, n in components.most_common()],
        self_top=[(name, n * share) for name, n in own.most_common(15)],
        inclusive_top=[
            (name, n * share)
            for name, n in inclusive.most_common(60)
            if "(injector/" in name and not any(p in name for p in PROCESS_FRAMES)
        ][:15],
        stacks_file=str(out),
    )


def _component(frame: str) -> str:
    for needle, name in COMPONENTS:
        if needle in frame:
            return name
    return OTHER


def _short(frame: str) -> str:
    """`function (path/file.py:12)` → `function (path/file.py)`: one entry per function."""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.rstrip(')').rsplit(':', 1)[0]})"
