"""The watcher loop: settle before building, skip what changed while building, survive errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from injector.service.watch import Watcher

pytestmark = pytest.mark.anyio


@dataclass
class Files:
    """A fake `Reloadable` over one string; "boom" crashes the build."""

    content: str
    name: str = "fake"
    applied: list[str] = field(default_factory=list)
    builds: list[str] = field(default_factory=list)
    crashes: int = 0
    while_building: Callable[[], None] = lambda: None

    def read(self) -> str:
        return self.content

    def build(self, snapshot: str) -> str:
        self.builds.append(snapshot)
        self.while_building()
        if snapshot == "boom":
            raise RuntimeError("unexpected")
        return snapshot.upper()

    def apply(self, built: str) -> None:
        self.applied.append(built)

    def crashed(self) -> None:
        self.crashes += 1


def watcher(files: Files) -> Watcher[str, str]:
    return Watcher(files, files.content, poll=0.01, settle=0.01, backoff=0.01)


async def test_nothing_happens_until_the_files_change() -> None:
    files = Files("v1")
    watching = watcher(files)
    assert await watching.check() is False
    files.content = "v2"
    assert await watching.check() is True
    assert await watching.check() is False
    assert (files.applied, watching.loaded) == (["V2"], "v2")


async def test_a_change_is_built_once_it_settles() -> None:
    files = Files("v1")
    reads = iter(["v2", "v3", "v3", "v3"])
    files.read = lambda: next(reads)  # type: ignore[method-assign]
    assert await watcher(files).check() is True
    assert files.builds == ["v3"]
    assert files.applied == ["V3"]


async def test_what_changed_while_building_is_not_applied() -> None:
    files = Files("v1")
    watching = watcher(files)
    files.content = "v2"

    def newer() -> None:
        files.content = "v3"

    files.while_building = newer
    assert await watching.check() is False
    assert (files.applied, watching.loaded) == ([], "v1")
    assert await watching.check() is True
    assert files.applied == ["V3"]


async def test_errors_are_logged_counted_and_never_stop_the_loop() -> None:
    files = Files("v1")
    watching = watcher(files)
    with capture_logs() as logs:
        task = asyncio.create_task(watching.run())
        files.content = "boom"
        while not files.crashes:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert files.builds == ["boom"], "the content that crashed is not retried"
        files.content = "v2"
        while not files.applied:
            await asyncio.sleep(0.01)
        task.cancel()
    assert files.applied == ["V2"]
    assert files.crashes == 1
    crashed = [e for e in logs if e["event"] == "reload_crashed"]
    assert crashed[0]["target"] == "fake"
    assert crashed[0]["log_level"] == "error"
