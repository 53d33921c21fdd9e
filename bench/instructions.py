"""CPU instructions per admission, counted by valgrind (callgrind): repeatable whatever else the
machine does, so two versions of the code can be compared exactly.

    .venv/bin/python bench/instructions.py [--requests N] [--path /mutate] [--inject NAMES]

Drives the webhook's ASGI app in process (no sockets, no TLS): the HTTP checks, parsing, the
decision, the answer, the metrics and the canonical log line (JSON, to /dev/null), for the 6 KB
sample review. The process runs twice under callgrind, with N and with 0 requests; the
difference divided by N is the cost of one admission. `--source DIR` measures the `injector`
package of another checkout instead (e.g. `git worktree add --detach /tmp/old <commit>`), with
this venv's dependencies: two versions compared in the same run."""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def use_source(source: str) -> None:
    """Import `injector` from `source`: the editable install's finder would win over sys.path."""
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
    sys.path.insert(0, source)


def drive(requests: int, path: str, inject: str, profiles: str) -> None:
    """The measured process: load, one warm-up admission, then `requests` more."""
    import orjson  # noqa: PLC0415
    from prometheus_client import CollectorRegistry  # noqa: PLC0415
    from starlette.types import Message  # noqa: PLC0415

    from injector.catalog import Catalog  # noqa: PLC0415
    from injector.loader import load_directory  # noqa: PLC0415
    from injector.policy import Settings  # noqa: PLC0415
    from injector.service import logs  # noqa: PLC0415
    from injector.service.app import webhook_app  # noqa: PLC0415
    from injector.service.metrics import Metrics  # noqa: PLC0415
    from injector.service.runner import settle_heap  # noqa: PLC0415
    from injector.service.sample import review  # noqa: PLC0415
    from injector.service.state import State  # noqa: PLC0415

    with open("/dev/null", "w") as sink:
        logs.configure("info", "json", sink)
        catalog = Catalog.from_load(load_directory(ROOT / "examples" / "templates"))
        settings = Settings(profiles=_profiles(profiles)) if profiles else Settings()
        state = State(settings, "deny")
        state.swap_catalog(catalog)
        app = webhook_app(state, Metrics(CollectorRegistry()), 3 * 1024 * 1024)
        body = orjson.dumps(review(inject))
        scope: dict[str, Any] = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200, message

        settle_heap()  # as the service does once it has started

        async def run(count: int) -> None:
            for _ in range(count):
                await app(scope, receive, send)

        asyncio.run(run(1 + requests))


def _profiles(text: str) -> dict[str, tuple[str, ...]]:
    pairs = (entry.split("=", 1) for entry in text.split(";") if entry)
    return {name: tuple(names.split(",")) for name, names in pairs}


def count(requests: int, args: argparse.Namespace) -> int:
    """Instructions of one whole process run under callgrind."""
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--drive", str(requests), "--path", args.path,
        "--inject", args.inject, "--profiles", args.profiles, "--source", args.source,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    assert found, result.stderr[-2000:]
    return int(found[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--path", default="/mutate")
    parser.add_argument("--inject", default="log-shipper")
    parser.add_argument("--profiles", default="", help="NAME=t1,t2;OTHER=t3")
    parser.add_argument("--source", default="", help="checkout whose injector/ to measure")
    parser.add_argument("--drive", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.source:
        use_source(str(Path(args.source).resolve()))
    if args.drive is not None:
        drive(args.drive, args.path, args.inject, args.profiles)
        return 0
    per_request = (count(args.requests, args) - count(0, args)) / args.requests
    where = f", injector from {args.source}" if args.source else ""
    print(f"{per_request:,.0f} instructions per admission ({args.path}, {args.inject!r}{where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
