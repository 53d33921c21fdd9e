"""The real `serve` process for tests: started on 127.0.0.1 with free ports, always stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
SERVICE_NAME = "sidecar-injector.sidecar-injector.svc"


class Lines:
    """Lines of one output stream, collected by a thread so the pipe never fills up."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, match: Callable[[str], bool], timeout: float = START_TIMEOUT) -> str | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if match(line)), None)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0 or not self._thread.is_alive():
                    return found
                self._changed.wait(remaining)

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)


class Service:
    """One running `python -m injector.service` process."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "injector.service", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.stdout = Lines(self.proc.stdout)
        self.stderr = Lines(self.proc.stderr)
        self.port = 0
        self.metrics_port = 0

    def events(self, name: str) -> list[dict[str, Any]]:
        """JSON log lines with this event."""
        found = []
        for line in self.stdout.text().splitlines():
            if f'"{name}"' in line:
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def wait_listening(self) -> None:
        line = self.stdout.wait_for(lambda text: '"event":"listening"' in text)
        if line is None:
            self.stop()
            raise AssertionError(
                f"service did not start:\n{self.stdout.text()}\n{self.stderr.text()}"
            )
        event = json.loads(line)
        self.port, self.metrics_port = event["port"], event["metrics_port"]

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stdout.join()
        self.stderr.join()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode

    def wait(self, timeout: float = START_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.stop()


def local_args(*extra: str) -> list[str]:
    """Flags that keep a test process on loopback with free ports and JSON logs."""
    return [
        "--host=127.0.0.1",
        "--port=0",
        "--metrics-port=0",
        "--log-format=json",
        "--shutdown-delay=0",
        "--graceful-timeout=2",
        *extra,
    ]


@contextmanager
def running(args: Sequence[str], env: dict[str, str] | None = None) -> Iterator[Service]:
    """A started service that is stopped (killed if need be) whatever happens."""
    service = Service(args, env)
    try:
        service.wait_listening()
        yield service
    finally:
        service.stop()
