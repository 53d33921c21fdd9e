"""The process: load templates and TLS, bind both ports, run two uvicorn servers, stop on SIGTERM.

States: start-up (I/O that may fail: exit 1) → serving → draining (SIGTERM: readiness fails,
requests still served for --shutdown-delay) → stopping (uvicorn's graceful shutdown, bounded by
--graceful-timeout) → exit 0. A second SIGTERM/SIGINT skips what is left of the drain and
forces the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog
import uvicorn
import uvloop
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from injector.catalog import Catalog
from injector.loader import load_directory
from injector.service.app import ops_app, webhook_app
from injector.service.config import Config
from injector.service.dev import DevSetup
from injector.service.metrics import Metrics
from injector.service.state import State
from injector.service.tls import TLSError, TLSHolder

log = structlog.get_logger("injector.service")

KEEP_ALIVE_SECONDS = 120
"""Longer than the kube-apiserver's idle timeout (90 s): the client, not us, closes idle
connections, so a request never races a server-side close (POSTs are not retried)."""


class StartupError(Exception):
    """Something the service needs is missing or broken: exit 1 with this message."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals alone: two servers would overwrite each other's
    handlers, so `Service` owns SIGTERM/SIGINT and drives both."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Service:
    """Everything one `serve` process shares: state, metrics, TLS."""

    config: Config
    state: State
    metrics: Metrics
    registry: CollectorRegistry
    tls: TLSHolder

    @classmethod
    def start(cls, config: Config) -> Service:
        """Load templates and TLS once; broken templates are reported, not fatal."""
        registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        metrics = Metrics(registry)
        state = State(config.settings, config.on_error)
        catalog = load_catalog(config.templates_dir)
        state.swap_catalog(catalog)
        metrics.catalog(catalog, time.time())
        try:
            tls = TLSHolder(config.tls_cert, config.tls_key)
        except TLSError as exc:
            raise StartupError(str(exc)) from None
        state.tls_loaded = True
        metrics.tls_expiry.set(tls.expires_at)
        return cls(config, state, metrics, registry, tls)

    def servers(self) -> tuple[_Server, _Server]:
        config = self.config
        common = {
            "http": "httptools",
            "lifespan": "off",
            "log_config": None,
            "access_log": False,
            "proxy_headers": False,
            "server_header": False,
            "timeout_graceful_shutdown": config.graceful_timeout,
        }
        webhook = uvicorn.Config(
            webhook_app(self.state, self.metrics, config.max_body_bytes),
            ssl_context_factory=self.tls.context_factory(),
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            **common,  # type: ignore[arg-type]
        )
        ops = uvicorn.Config(ops_app(self.state, self.registry), **common)  # type: ignore[arg-type]
        return _Server(webhook), _Server(ops)

    async def serve(self, webhook_socket: socket.socket, ops_socket: socket.socket) -> int:
        """Serve until SIGTERM/SIGINT, drain, stop both servers; the exit code."""
        webhook, ops = self.servers()
        stop = asyncio.Event()
        force = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _on_signal, stop, force, (webhook, ops))
        tasks = [
            asyncio.create_task(webhook.serve([webhook_socket])),
            asyncio.create_task(ops.serve([ops_socket])),
        ]
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        if stopping in done:
            await self._drain(force)
        else:
            stopping.cancel()
            log.error("server_stopped_unexpectedly")
        webhook.should_exit = ops.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for error in failed:
            log.error("server_failed", error=repr(error))
        log.info("stopped")
        return 0 if stopping in done and not failed else 1

    async def _drain(self, force: asyncio.Event) -> None:
        """Readiness fails at once so endpoints drop this pod; keep serving meanwhile."""
        self.state.shutting_down = True
        delay = self.config.shutdown_delay
        log.info("shutdown_started", drain_seconds=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(force.wait(), timeout=delay)


def load_catalog(directory: Path) -> Catalog:
    """The first catalog; each broken template is logged with its errors."""
    try:
        catalog = Catalog.from_load(load_directory(directory))
    except OSError as exc:
        raise StartupError(f"cannot read --templates-dir {directory}: {exc}") from None
    for name, errors in catalog.errors.items():
        log.warning("template_load_failed", template=name, errors=[str(e) for e in errors])
    log.info("templates_loaded", templates=sorted(catalog.templates), broken=catalog.broken)
    return catalog


def _on_signal(stop: asyncio.Event, force: asyncio.Event, servers: tuple[_Server, ...]) -> None:
    if not stop.is_set():
        stop.set()
        return
    force.set()
    for server in servers:
        server.should_exit = server.force_exit = True


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from None
    sock.setblocking(False)
    return sock


def run(config: Config) -> int:
    """Start, serve until stopped, and return the exit code (only the CLI calls sys.exit)."""
    with contextlib.ExitStack() as stack:
        return _run(config, stack)


def _run(config: Config, stack: contextlib.ExitStack) -> int:
    dev = None
    if config.dev:
        dev = stack.enter_context(DevSetup.create(config))
        config = dev.config
    log.info("starting", **config.summary())
    try:
        service = Service.start(config)
        webhook_socket = stack.enter_context(bind(config.host, config.port))
        ops_socket = stack.enter_context(bind(config.host, config.metrics_port))
    except StartupError as exc:
        log.error("startup_failed", error=str(exc))
        return 1
    port = webhook_socket.getsockname()[1]
    metrics_port = ops_socket.getsockname()[1]
    log.info("listening", host=config.host, port=port, metrics_port=metrics_port)
    if dev is not None:
        dev.announce(port, metrics_port)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(service.serve(webhook_socket, ops_socket))
