"""The real `serve` process for tests: started on 127.0.0.1 with free ports, always stopped."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

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

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        command: Sequence[str] = (sys.executable, "-m", "injector.service"),
        cwd: Path = REPO,
    ) -> None:
        self.proc = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
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

    def metric(self, name: str, **labels: str) -> float | None:
        """The current value of one sample on /metrics, None if the series does not exist."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

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
        terminate(self.proc, timeout)
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


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if the process does not exit within `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


class Connection(http.client.HTTPSConnection):
    """One keep-alive HTTPS connection to a local service, verified as SERVICE_NAME. It never
    reconnects behind the caller's back: a closed connection raises on the next request."""

    def __init__(self, port: int, context: ssl.SSLContext, timeout: float = 10.0) -> None:
        super().__init__("127.0.0.1", port, timeout=timeout, context=context)
        self.tls = context
        self.auto_open = 0

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.tls.wrap_socket(raw, server_hostname=SERVICE_NAME)

    @classmethod
    def opened(cls, port: int, context: ssl.SSLContext) -> Connection:
        """Connected and handshaken now (the certificate is verified here)."""
        connection = cls(port, context)
        connection.connect()
        return connection

    def start(self, body: bytes, sent: int | None = None) -> None:
        """Send the request line, the headers and `sent` bytes of the body (all by default)."""
        self.putrequest("POST", "/mutate", skip_accept_encoding=True)
        self.putheader("content-type", "application/json")
        self.putheader("content-length", str(len(body)))
        self.endheaders()
        self.send(body[:sent])

    def finish(self) -> Reply:
        """Read the whole response, so the connection can be reused."""
        response = self.getresponse()
        return Reply(response.status, response.headers, response.read())

    def mutate(self, body: bytes) -> Reply:
        """POST one review and read the answer."""
        self.start(body)
        return self.finish()


@dataclass(frozen=True)
class Reply:
    """One HTTP response as read from a `Connection`."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)
