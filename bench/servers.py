"""The processes under test: start them on 127.0.0.1, find their ports, read their CPU time and
memory from /proc, and always stop them (SIGTERM, then SIGKILL to the process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from injector.service.dev import make_certificates

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TICKS = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
START_TIMEOUT = 300.0
STOP_TIMEOUT = 15.0


class BenchError(Exception):
    """The benchmark cannot go on (a server did not start, a tool is missing, ...)."""


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> Certs:
        ca_pem, cert_pem, key_pem = make_certificates(HOST)
        certs = cls(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
        certs.ca.write_bytes(ca_pem)
        certs.cert.write_bytes(cert_pem)
        certs.key.write_bytes(key_pem)
        certs.key.chmod(0o600)
        return certs


@dataclass
class Server:
    """One process under test. Its stdout (the JSON log stream) goes to `log`, opened for
    appending so the benchmark can truncate it between runs to keep the disk use bounded."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    metrics_port: int = 0
    started: float = 0.0
    ready_seconds: float = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}/mutate"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_INJECTOR_")}
        with self.log.open("ab") as out:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() can kill all of it
            )

    def wait_listening(self, deadline: float) -> None:
        """Read the log until the `listening` line gives the ports."""
        while time.monotonic() < deadline:
            self._check_alive()
            for line in self.log.read_bytes().splitlines():
                if b'"listening"' in line:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        event = orjson.loads(line)
                        if event.get("event") == "listening":
                            self.port = int(event["port"])
                            self.metrics_port = int(event.get("metrics_port", 0))
                            return
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not report its ports in time:\n{self.tail()}")

    def wait_ready(self, deadline: float) -> None:
        """/readyz on the metrics port (the service), or the listening line (the baseline)."""
        self.wait_listening(deadline)
        if self.metrics_port:
            url = f"http://{HOST}:{self.metrics_port}/readyz"
            while True:
                self._check_alive()
                try:
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        if answer.status == 200:
                            break
                except (OSError, urllib.error.URLError):
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.name} never became ready:\n{self.tail()}")
                time.sleep(0.05)
        self.ready_seconds = time.monotonic() - self.started

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited during start-up:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL the whole process group if it does not stop in time."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.proc = None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- what /proc says about it ---

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all its threads), in seconds (clock-tick resolution)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def cpu_seconds_precise(self) -> float:
        """The scheduler's run time of the live threads, in seconds (nanosecond resolution):
        for measurements too short for the clock ticks of cpu_seconds()."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    def status_kib(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def reset_peak_rss(self) -> bool:
        """Reset VmHWM to the current RSS (`5` to clear_refs), so a run reports its own peak."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> bytes:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read()

    def truncate_log(self) -> None:
        """Drop what was logged so far (the child appends, so it just goes on at offset 0)."""
        os.truncate(self.log, 0)


def service(name: str, templates: Path, certs: Certs, work: Path) -> Server:
    """The real `serve` process with production flags: info level, JSON logs on stdout."""
    argv = [
        sys.executable,
        "-m",
        "injector.service",
        f"--host={HOST}",
        "--port=0",
        "--metrics-port=0",
        f"--templates-dir={templates}",
        f"--tls-cert={certs.cert}",
        f"--tls-key={certs.key}",
        "--shutdown-delay=0",
        "--graceful-timeout=2",
    ]
    return Server(name, argv, work / f"{name}.log")


def baseline(certs: Certs, work: Path) -> Server:
    argv = [
        sys.executable,
        str(HERE / "baseline.py"),
        f"--tls-cert={certs.cert}",
        f"--tls-key={certs.key}",
        "--port=0",
    ]
    return Server("baseline", argv, work / "baseline.log")


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    """Start every server (in parallel: the 1,000-template one takes a while), wait until all
    are ready, and stop them all on the way out, whatever happens."""
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start()
        deadline = time.monotonic() + START_TIMEOUT
        for server in servers:
            server.wait_ready(deadline)
        yield
