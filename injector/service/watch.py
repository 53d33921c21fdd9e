"""Noticing new versions of mounted files: poll a snapshot, let it settle, build, apply whole.

The kubelet updates a ConfigMap or Secret volume by writing a new `..<timestamp>/` directory and
renaming the `..data` symlink onto it; the files are symlinks through `..data`. Each poll reads
the files by name, so it always sees what a fresh `open()` would see, and compares that snapshot
with the one last applied. There is no file-system event to miss, no inotify watch or instance
limit to run out of, and it works the same on every volume type. docs/operations.md explains
the choice ("Why the webhook polls instead of using inotify").
"""

from __future__ import annotations

import asyncio
from typing import Generic, Protocol, TypeVar

import structlog

log = structlog.get_logger("injector.service.watch")

POLL_SECONDS = 0.25
"""How often the files are compared with what is loaded; one poll of a few small files costs
tens of microseconds, in a worker thread."""
SETTLE_SECONDS = 0.1
"""Debounce: a change is applied once two reads this far apart agree. The kubelet's swap is
atomic, but other writers (a developer, a sync tool) write one file at a time."""
SETTLE_ROUNDS = 10
"""A directory that never stops changing is built anyway after this many reads."""
CRASH_BACKOFF_SECONDS = 5.0
"""After an unexpected error, wait this long before polling again (no log flood)."""

S = TypeVar("S")
B = TypeVar("B")


class Reloadable(Protocol[S, B]):
    """Something loaded from files that can be replaced while serving."""

    name: str

    def read(self) -> S:
        """A comparable snapshot of the files; expected problems are part of the snapshot.
        Runs in a worker thread."""
        ...

    def build(self, snapshot: S) -> B:
        """Everything the new version needs, built without touching what is serving. Runs
        in a worker thread."""
        ...

    def apply(self, built: B) -> None:
        """Swap the new version in (or report why it cannot be). Runs on the event loop."""
        ...

    def crashed(self) -> None:
        """An unexpected error stopped this reload; count it where operators look."""
        ...


class Watcher(Generic[S, B]):
    """Applies each settled new snapshot of one `Reloadable`, forever."""

    def __init__(
        self,
        target: Reloadable[S, B],
        loaded: S,
        poll: float = POLL_SECONDS,
        settle: float = SETTLE_SECONDS,
        backoff: float = CRASH_BACKOFF_SECONDS,
    ) -> None:
        self.target = target
        self.loaded = loaded
        self.poll = poll
        self.settle = settle
        self.backoff = backoff

    async def run(self) -> None:
        """Poll until cancelled. No exception ends the loop: the next change is tried again."""
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.check()
            except Exception:
                log.exception("reload_crashed", target=self.target.name)
                self.target.crashed()
                await asyncio.sleep(self.backoff)

    async def check(self) -> bool:
        """One poll; whether a new version was applied."""
        seen = await self._read()
        if seen == self.loaded:
            return False
        seen = await self._settled(seen)
        # Remembered before building: content that crashes the build is not retried every
        # poll, only when the files change again.
        previous, self.loaded = self.loaded, seen
        built = await asyncio.to_thread(self.target.build, seen)
        if await self._read() != seen:
            # Changed while building: what was built from the files themselves (a TLS
            # context) may not be this snapshot. The next poll takes the newer version.
            self.loaded = previous
            return False
        self.target.apply(built)
        return True

    async def _read(self) -> S:
        return await asyncio.to_thread(self.target.read)

    async def _settled(self, seen: S) -> S:
        for _ in range(SETTLE_ROUNDS):
            await asyncio.sleep(self.settle)
            again = await self._read()
            if again == seen:
                break
            seen = again
        return seen
