"""The audit process: templates loaded and hot-reloaded exactly as the webhook loads them, pods
and namespaces kept in view by two metadata-only informers, every opted-in pod's state counted
(`tally.Tally`) and exported on /metrics; ready once both are listed; stops on SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from lightkube import Client
from lightkube.resources.core_v1 import Namespace, Pod
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from injector.audit.informer import Event, Informer, Restart
from injector.audit.lastgood import LastGood
from injector.fleet import Fleet, PodMeta
from injector.ops.selectors import matches
from injector.policy import Settings
from injector.service.app import ops_app
from injector.service.metrics import NAMESPACE, Metrics
from injector.service.reload import Templates
from injector.service.runner import QuietServer, StartupError
from injector.service.state import State
from injector.service.watch import Watcher
from injector.tally import Series, Tally
from injector.types import JSON

log = structlog.get_logger("injector.audit")

FOLLOW_SECONDS = 1.0
"""How often a reloaded catalog is looked for: a changed one re-judges every pod."""


@dataclass
class AuditState(State):
    """The webhook's state (settings, the catalog the reload swaps in), ready once the fleet
    is listed rather than once TLS is loaded: the audit serves no TLS."""

    synced: bool = False

    def readiness(self) -> dict[str, bool]:
        return {
            "templates_loaded": self.templates_loaded,
            "synced": self.synced,
            "not_shutting_down": not self.shutting_down,
        }


@dataclass(frozen=True)
class Selectors:
    """The webhook configuration's own selectors (the chart's `webhook.namespaceSelector` and
    `webhook.objectSelector`): the pods they keep from the webhook are not audited, as the
    namespaces the webhook never sees are not (`outdated` reads them from the configuration)."""

    namespace: dict[str, JSON] | None = None
    pod: dict[str, JSON] | None = None


class Auditor:
    """The tally fed by the informers' threads (one lock: events, relists and scrapes never
    interleave), and the metrics that read it."""

    def __init__(
        self,
        client: Client,
        state: AuditState,
        registry: CollectorRegistry,
        last_good: LastGood | None = None,
        selectors: Selectors = Selectors(),
    ) -> None:
        self.state = state
        self.last_good = last_good
        self.selectors = selectors
        self.lock = threading.Lock()
        self.namespaces: set[str] = set()
        self.unselected: frozenset[str] = frozenset()
        """Namespaces the namespace selector leaves out: judged as excluded namespaces."""
        self.pods_listed = False
        """A pods list has ended: a namespace change after it needs a relist (before it, the
        list in progress sees the change and lists again itself)."""
        self.tally = Tally(self._fleet())
        self.pods = Informer(client, Pod, self._pods_listed, self._pod_changed, self._restarted)
        self.namespace_informer = Informer(
            client, Namespace, self._namespaces_listed, self._namespace_changed, self._restarted
        )
        self.restarts = Counter(
            "audit_watch_restarts",
            "Times a list+watch was resumed or listed again, by kind and reason.",
            ("kind", "reason"),
            namespace=NAMESPACE,
            registry=registry,
        )
        synced = Gauge(
            "audit_synced",
            "1 while pods and namespaces are listed and their watches connected.",
            namespace=NAMESPACE,
            registry=registry,
        )
        synced.set_function(lambda: float(self.synced))
        registry.register(PodsCollector(self))

    @property
    def key(self) -> str:
        return self.state.settings.inject_key

    @property
    def synced(self) -> bool:
        return self.pods.healthy and self.namespace_informer.healthy

    def start(self) -> None:
        self.namespace_informer.start()
        self.pods.start()

    def stop(self) -> None:
        self.pods.stop()
        self.namespace_informer.stop()

    def follow(self) -> None:
        """Called every FOLLOW_SECONDS: a reloaded catalog re-judges every pod (a relist)."""
        if self.state.catalog is not self.tally.fleet.catalog:
            self.pods.relist()
        if self.synced and not self.state.synced:
            self.state.synced = True
            log.info("synced", pods=self.tally.pods, namespaces=len(self.namespaces))

    def _fleet(self, unselected: frozenset[str] = frozenset()) -> Fleet:
        """A Fleet for the templates now loaded, the namespaces left out excluded."""
        settings = self.state.settings
        if unselected:
            excluded = settings.exclude_namespaces | unselected
            settings = dataclasses.replace(settings, exclude_namespaces=excluded)
        return Fleet(self.state.catalog, settings)

    def _selected(self, name: str, labels: dict[str, str]) -> bool:
        if self.selectors.namespace is None:
            return True
        return matches(self.selectors.namespace, {**labels, "kubernetes.io/metadata.name": name})

    def _pods_listed(self, items: Iterator[dict[str, Any]]) -> None:
        """A full list, judged into a fresh tally page by page and outside the lock (scrapes
        and events go on meanwhile; no pod's metadata is kept), then swapped in whole."""
        with self.lock:
            fleet = self.tally.fleet
            labels = self.tally.labels
            unselected = self.unselected
        excluded = self.state.settings.exclude_namespaces | unselected
        if self.state.catalog is not fleet.catalog or fleet.settings.exclude_namespaces != excluded:
            fleet = self._fleet(unselected)
        metas = (PodMeta.of(item) for item in items)
        fresh = Tally.of(fleet, labels, (m for m in metas if self._pod_selected(m)))
        with self.lock:
            relabeled = self.tally.labels != labels or self.unselected != unselected
            fresh.replace_namespaces(self.tally.labels)
            self.tally = fresh
            self.pods_listed = True
            self._report_unreadable()
        if relabeled:  # a namespace changed while listing: its pods were judged before
            self.pods.relist()

    def _pod_selected(self, meta: PodMeta) -> bool:
        return self.selectors.pod is None or matches(self.selectors.pod, meta.labels)

    def _pod_changed(self, event: Event, metadata: dict[str, Any]) -> None:
        meta = PodMeta.of(metadata)
        with self.lock:
            if event == "DELETED" or not self._pod_selected(meta):
                self.tally.pod_deleted(meta.namespace, meta.name)
                return
            self.tally.pod(meta)
            error = self.tally.unreadable.get((meta.namespace, meta.name))
        if error is not None:
            log.warning("unreadable_status", namespace=meta.namespace, pod=meta.name, error=error)

    def _namespaces_listed(self, objects: Iterator[dict[str, Any]]) -> None:
        items = list(objects)
        labels = {}
        unselected = set()
        for metadata in items:
            name = str(metadata.get("name"))
            all_labels = metadata.get("labels") or {}
            value = all_labels.get(self.key)
            if isinstance(value, str):
                labels[name] = value
            if not self._selected(name, all_labels):
                unselected.add(name)
        with self.lock:
            self.namespaces = {str(m.get("name")) for m in items}
            changed = self.tally.replace_namespaces(labels)
            reselected = self.unselected != unselected
            self.unselected = frozenset(unselected)
            relist = (changed or reselected) and self.pods_listed
        if relist:
            self.pods.relist()

    def _namespace_changed(self, event: Event, metadata: dict[str, Any]) -> None:
        name = str(metadata.get("name"))
        all_labels = metadata.get("labels") or {}
        value = all_labels.get(self.key)
        label = value if isinstance(value, str) and event != "DELETED" else None
        selected = event == "DELETED" or self._selected(name, all_labels)
        with self.lock:
            known = name in self.namespaces
            if event == "DELETED":
                self.namespaces.discard(name)
            else:
                self.namespaces.add(name)
            changed = self.tally.namespace(name, label)
            before = self.unselected
            self.unselected = before - {name} if selected else before | {name}
            if self.unselected != before:
                if known and event != "DELETED":
                    changed = True  # its pods move in or out of the audit: judged again
                else:
                    # A new namespace has no pods yet, a deleted one's go as their own events:
                    # only the pods to come need the new selection, no relist.
                    self.tally.fleet = self._fleet(self.unselected)
        if changed:
            # Its pods are judged again from a fresh list: the tally keeps no pod's metadata.
            self.pods.relist()

    def _restarted(self, kind: str, reason: Restart) -> None:
        self.restarts.labels(kind, reason).inc()

    def _report_unreadable(self) -> None:
        for (namespace, name), error in self.tally.unreadable.items():
            log.warning("unreadable_status", namespace=namespace, pod=name, error=error)


class PodsCollector(Collector):
    """`audit_pods{namespace,template,state}` read from the tally at scrape time, so it is
    never half-updated. A series that reached 0 stays, at 0, while its namespace exists: a
    graph and an alert see the problem end rather than the series vanish."""

    def __init__(self, auditor: Auditor) -> None:
        self.auditor = auditor
        self.seen: set[Series] = set()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected only when scraped

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            f"{NAMESPACE}_audit_pods",
            "Opted-in pods by namespace, template and state (current, outdated, removed, "
            "missed, blocked); template is empty for a finding about the whole pod.",
            labels=("namespace", "template", "state"),
        )
        auditor = self.auditor
        with auditor.lock:
            counts = dict(auditor.tally.counts)
            existing = set(auditor.namespaces)
        self.seen = {s for s in self.seen if s[0] in existing} | set(counts)
        for series in sorted(self.seen):
            family.add_metric(series, counts.get(series, 0))
        yield family


async def serve(
    auditor: Auditor, state: AuditState, registry: CollectorRegistry,
    watcher: Watcher[Any, Any], sock: socket.socket,
) -> int:  # fmt: skip
    """Serve /metrics and the probes, follow the templates and the fleet, until SIGTERM."""
    config = uvicorn.Config(
        ops_app(state, registry), lifespan="off", log_config=None, access_log=False,
        server_header=False, timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = QuietServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    auditor.start()
    tasks = [
        asyncio.create_task(server.serve([sock])),
        asyncio.create_task(watcher.run()),
        asyncio.create_task(_follow(auditor)),
    ]
    if auditor.last_good is not None:
        tasks.append(asyncio.create_task(_keep_last_good(auditor.last_good, state)))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([tasks[0], stopping], return_when=asyncio.FIRST_COMPLETED)
    state.shutting_down = True
    log.info("stopping")
    auditor.stop()
    server.should_exit = True
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    log.info("stopped")
    return 0 if stopping in done else 1


async def _follow(auditor: Auditor) -> None:
    while True:
        await asyncio.sleep(FOLLOW_SECONDS)
        auditor.follow()


async def _keep_last_good(last_good: LastGood, state: AuditState) -> None:
    """Its own loop: an API server slow to answer a write never holds up the fleet."""
    while True:
        if last_good.due(state.catalog):
            await asyncio.to_thread(last_good.sync, state.catalog)
        await asyncio.sleep(FOLLOW_SECONDS)


def start(
    client: Client,
    settings: Settings,
    templates_dir: Path,
    *,
    last_good_dir: Path | None = None,
    last_good: tuple[str, str] | None = None,
    selectors: Selectors = Selectors(),
) -> tuple[Auditor, AuditState, CollectorRegistry, Watcher[Any, Any]]:
    """Load the templates once (broken ones are reported, as by the webhook; `last_good_dir`
    as its --last-good-dir) and build the auditor, which keeps the ConfigMap `last_good`
    (namespace, name) in step when given; StartupError when the directory cannot be read."""
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    # The webhook's own template metrics (loaded, load errors, reloads): the same loader.
    metrics = Metrics(registry)
    state = AuditState(settings, "deny")
    templates = Templates(templates_dir, state, metrics, last_good_dir=last_good_dir)
    files = templates.read()
    if isinstance(files, str):
        raise StartupError(files)
    templates.load_first(files)
    keeper = None if last_good is None else LastGood(client, *last_good, registry)
    auditor = Auditor(client, state, registry, keeper, selectors)
    return auditor, state, registry, Watcher(templates, files)
