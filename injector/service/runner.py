"""The process: load templates and TLS, bind both ports, run two uvicorn servers, stop on SIGTERM.

States: start-up (I/O that may fail: exit 1) → serving (templates and certificate watched and
hot-reloaded) → draining (SIGTERM: readiness fails, requests still served for --shutdown-delay,
each answered with `Connection: close` so clients reconnect to a ready replica) → stopping
(listeners closed; in-flight requests finish within --graceful-timeout, idle connections are not
waited for) → exit 0. A second SIGTERM/SIGINT skips what is left of the drain and forces the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn
import uvloop
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from injector.service.app import ops_app, webhook_app
from injector.service.config import Config
from injector.service.dev import DevSetup
from injector.service.metrics import Metrics
from injector.service.protocol import CoalescingHttpToolsProtocol
from injector.service.reload import Certificate, Templates
from injector.service.state import State
from injector.service.tls import TLSError, TLSHolder
from injector.service.watch import Watcher

log = structlog.get_logger("injector.service")

KEEP_ALIVE_SECONDS = 120
"""Longer than the kube-apiserver's idle timeout (90 s): the client, not us, closes idle
connections, so a request never races a server-side close (POSTs are not retried)."""
CLOSE_LINGER_SECONDS = 0.5
"""When stopping, after the last in-flight request: time for connections to finish closing
(a TLS close waits for the client's close_notify) before the rest are left to process exit."""


class StartupError(Exception):
    """Something the service needs is missing or broken: exit 1 with this message."""


class QuietServer(uvicorn.Server):
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
    watchers: tuple[Watcher[Any, Any], ...]

    @classmethod
    def start(cls, config: Config) -> Service:
        """Load templates and TLS once; broken templates are reported, not fatal."""
        registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        metrics = Metrics(registry)
        state = State(config.settings, config.on_error)
        templates = Templates(
            config.templates_dir, state, metrics, last_good_dir=config.last_good_dir
        )
        files = templates.read()
        if isinstance(files, str):
            raise StartupError(files)
        templates.load_first(files)
        try:
            tls = TLSHolder(config.tls_cert, config.tls_key)
        except TLSError as exc:
            raise StartupError(str(exc)) from None
        state.tls_loaded = True
        metrics.tls_expiry.set(tls.expires_at)
        certificate = Certificate(config.tls_cert, config.tls_key, tls, metrics)
        watchers = (Watcher(templates, files), Watcher(certificate, tls.pair))
        return cls(config, state, metrics, registry, tls, watchers)

    def servers(self) -> tuple[QuietServer, QuietServer]:
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
            **(common | {"http": CoalescingHttpToolsProtocol}),  # type: ignore[arg-type]
        )
        ops = uvicorn.Config(ops_app(self.state, self.registry), **common)  # type: ignore[arg-type]
        return QuietServer(webhook), QuietServer(ops)

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
        watching = [asyncio.create_task(w.run()) for w in self.watchers]
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        if stopping in done:
            await self._drain(force)
        else:
            stopping.cancel()
            log.error("server_stopped_unexpectedly")
        for task in watching:
            task.cancel()
        log.info("stopping", graceful_timeout_seconds=self.config.graceful_timeout)
        releasing = [asyncio.create_task(_stop(server)) for server in (webhook, ops)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for task in releasing:
            task.cancel()
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


async def _stop(server: QuietServer) -> None:
    """Stop one server: uvicorn closes its listeners, lets in-flight requests finish (bounded by
    --graceful-timeout) and closes idle connections, then waits until every connection is gone.
    Closing a TLS connection waits for the client's close_notify, which an idle client that is
    not reading never sends: uvicorn would sit out the whole timeout (and log an error). So once
    no request is in progress and closes had a moment, stop waiting for the rest."""
    server.should_exit = True
    while not server.started or any(s.is_serving() for s in server.servers):
        await asyncio.sleep(0.05)
    # uvicorn runs each request in a task of `server_state.tasks` from its headers on.
    while server.server_state.tasks:
        await asyncio.sleep(0.05)
    await asyncio.sleep(CLOSE_LINGER_SECONDS)
    if server.server_state.connections:
        log.info("closing_idle_connections", count=len(server.server_state.connections))
    server.force_exit = True


def _on_signal(stop: asyncio.Event, force: asyncio.Event, servers: tuple[QuietServer, ...]) -> None:
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


GC_THRESHOLDS = (50_000, 20, 100)
"""Collect young objects after 50,000 net allocations instead of 700. A review allocates
thousands of short-lived containers that reference counting frees; with the default, parsing
a large pod under load set off collections over every request in flight (the benchmark's
100 KB p99 fell from 19 ms to 6-7 ms with the collector off)."""


def settle_heap() -> None:
    """Move everything loaded at start-up (modules, templates, TLS, metrics) out of the
    collector's reach, since it lives as long as the process, and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
    settle_heap()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(service.serve(webhook_socket, ops_socket))
