"""The real `serve` process on this machine, set up as the chart, kubelet and cert-manager would.

Arguments are the rendered container's, with only the bind address, the ports (127.0.0.1,
ephemeral) and the paths into the mounted volumes changed. The templates ConfigMap and the TLS
Secret are kubelet-style volumes, so edits and renewals are the kubelet's atomic swaps.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from e2e.apiserver import Connection, LocalApiserver
from e2e.chart import Release
from e2e.metrics import Samples
from e2e.pki import CAIssuer, Issued
from tests.chart.helm import LOOPBACK_FLAGS, PATH_FLAGS
from tests.service.process import START_TIMEOUT, Service
from tests.service.support import KubeletVolume

RELOAD_BOUND = 3.0
"""The service makes a swapped `..data` live within 2 s (docs/operations.md); 1 s more for a
busy 2-core machine."""


def local_args(release: Release, mounts: Mapping[str, Path], port: int = 0) -> list[str]:
    """The rendered args with loopback, free ports (or `port` for HTTPS) and local stand-ins
    for the mount paths."""
    args = []
    flags = {**LOOPBACK_FLAGS, "--port": str(port)}
    for name, value in release.args.items():
        local = flags.get(name, value)
        for mount_path, directory in mounts.items():
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                local = str(directory) + value[len(mount_path) :]
        assert (local != value) == (name in LOOPBACK_FLAGS or name in PATH_FLAGS), (name, value)
        args.append(f"{name}={local}")
    return args


@dataclass
class LocalInjector:
    """One started process with its volumes and CA; also the local `Webhook`."""

    release: Release
    service: Service
    args: list[str]
    """The process's command-line arguments."""
    ca: CAIssuer
    leaf: Issued
    templates_volume: KubeletVolume
    tls_volume: KubeletVolume
    extra_names: Sequence[str]
    data: dict[str, str]
    """The templates ConfigMap's data as last written to the volume."""
    reload_bound: float = RELOAD_BOUND
    poll_interval: float = 0.05

    @classmethod
    def start(
        cls, release: Release, root: Path, extra_names: Sequence[str] = (), port: int = 0
    ) -> LocalInjector:
        """Lay out the volumes, issue the certificates, start and wait until ready."""
        ca = CAIssuer(release.ca_certificate["spec"])
        leaf = ca.issue(release.serving_certificate["spec"], extra_names)
        templates = KubeletVolume(root / "templates")
        templates.write(release.templates)
        tls = KubeletVolume(root / "tls")
        tls.write(leaf.secret)
        # The last-good ConfigMap as a fresh install mounts it: empty until the audit writes.
        last_good = KubeletVolume(root / "last-good")
        last_good.write({})
        mounts = {
            release.mount_path("templates"): templates.root,
            release.mount_path("tls"): tls.root,
            release.mount_path("last-good"): last_good.root,
        }
        args = local_args(release, mounts, port)
        service = Service(args)
        injector = cls(
            release, service, args, ca, leaf, templates, tls, extra_names, release.templates
        )
        try:
            service.wait_listening()
            injector.wait_ready()
        except BaseException:
            service.stop()
            raise
        return injector

    def apiserver(self) -> LocalApiserver:
        """A new apiserver-like client (its own connections) for this webhook."""
        release = self.release
        # The client calls the webhook once per Pod: what the apiserver does with
        # reinvocationPolicy Never. IfNeeded would call it again after the in-tree plugins'
        # second run (see pods.as_stored), which the client does not model.
        assert release.webhook["reinvocationPolicy"] == "Never"
        return LocalApiserver(self.service.port, release, self.ca.bundle)

    def connect(self) -> Connection:
        """A new connection to the webhook port, handshaken and verified now."""
        connection = Connection(self.service.port, self.release.service_host, self.ca.bundle)
        connection.connect()
        return connection

    def ops(self, path: str) -> httpx.Response:
        """GET on the plain HTTP port, as the kubelet's probes and Prometheus do."""
        return httpx.get(f"http://127.0.0.1:{self.service.metrics_port}{path}", timeout=5)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.readiness() != 200:
            assert time.monotonic() < deadline, f"never ready:\n{self.service.stdout.text()}"
            assert self.service.proc.poll() is None, f"exited:\n{self.service.stderr.text()}"
            time.sleep(0.05)

    def stop(self) -> int:
        """Stop without sitting out the drain period: a first SIGTERM starts the drain (readiness
        fails), the second (`Service.stop`'s) skips the rest of it. The exit code."""
        if self.service.proc.poll() is None:
            self.service.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while self.service.proc.poll() is None and time.monotonic() < deadline:
                if self.readiness() == 503:
                    break
                time.sleep(0.02)
        return self.service.stop()

    @contextmanager
    def down(self) -> Iterator[None]:
        """The process stopped for the body of the `with`, then started again on the same
        HTTPS port (where the webhook configurations point) and ready."""
        port = self.service.port
        assert self.stop() == 0
        try:
            yield
        finally:
            self.args = [a if not a.startswith("--port=") else f"--port={port}" for a in self.args]
            self.service = Service(self.args)
            self.service.wait_listening()
            self.wait_ready()

    def readiness(self) -> int | None:
        """/readyz's status code; None once nothing listens."""
        try:
            return self.ops("/readyz").status_code
        except httpx.TransportError:
            return None

    # --- Webhook ---

    def templates(self) -> dict[str, str]:
        return dict(self.data)

    def edit_templates(self, data: Mapping[str, str]) -> None:
        self.templates_volume.write(data)
        self.data = dict(data)

    def renew_certificate(self) -> None:
        self.leaf = self.ca.issue(self.release.serving_certificate["spec"], self.extra_names)
        self.tls_volume.write(self.leaf.secret)

    def metrics(self) -> Samples:
        answer = self.ops("/metrics")
        assert answer.status_code == 200
        return Samples.parse(answer.text)

    def debug_templates(self) -> list[dict[str, Any]]:
        answer = self.ops("/debug/templates")
        assert answer.status_code == 200
        return [answer.json()]


@contextmanager
def started(
    release: Release, root: Path, extra_names: Sequence[str] = (), port: int = 0
) -> Iterator[LocalInjector]:
    """A started injector, always stopped; its exit code must be 0."""
    injector = LocalInjector.start(release, root, extra_names, port)
    try:
        yield injector
    finally:
        code = injector.stop()
    assert code == 0, f"exit code {code}:\n{injector.service.stderr.text()}"
