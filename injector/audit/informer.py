"""One kind's objects kept in view the way client-go's informers do: list, then watch from the
list's resourceVersion; resume after a dropped connection from the last version seen
(bookmarks keep it fresh while nothing changes); list again on 410 Gone; back off, bounded,
on errors. Metadata only: a pod's spec is never transferred."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

import httpx2 as httpx
import orjson
import structlog
from lightkube import ApiError, Client
from lightkube.core.resource import NamespacedResource, Resource

from injector.ops.kube import MetadataList

log = structlog.get_logger("injector.audit")

METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
"""The Accept header that makes watch events carry objects' metadata only."""
WATCH_SECONDS = 300
"""How long the API server keeps one watch open before it ends it (and we resume)."""
BACKOFF = (0.5, 30.0)
"""First and longest wait before trying again after an error."""

Event = Literal["ADDED", "MODIFIED", "DELETED"]
Restart = Literal["gone", "error", "relist"]


class Gone(Exception):
    """The resourceVersion to resume from is too old: list again."""


class Informer:
    """List+watch of `kind` in every namespace, on a thread of its own. `listed` gets every
    object's metadata after each (re)list, `changed` each event after it; `restarted` is told
    (with the informer's name) why the view was rebuilt or resumed. `relist()` asks for a
    fresh list from another thread (the consumer's input changed: templates, a namespace's
    label)."""

    def __init__(
        self,
        client: Client,
        kind: type[Resource],
        listed: Callable[[Iterator[dict[str, Any]]], None],
        changed: Callable[[Event, dict[str, Any]], None],
        restarted: Callable[[str, Restart], None],
    ) -> None:
        self.client = client
        self.kind = kind
        self.listed = listed
        self.changed = changed
        self.restarted = restarted
        self.healthy = False
        """True while the view is current: listed, and the watch connected."""
        self._stop = threading.Event()
        self._relist = threading.Event()
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._forbidden_said = False

    @property
    def name(self) -> str:
        return self.kind.__name__.lower() + "s"

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"informer-{self.name}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self._interrupt()

    def relist(self) -> None:
        self._relist.set()
        self._interrupt()

    def run(self) -> None:
        version: str | None = None
        wait = BACKOFF[0]
        while not self._stop.is_set():
            try:
                if version is None or self._relist.is_set():
                    self._relist.clear()
                    version = self._list()
                    continue  # a relist asked for meanwhile had no watch to interrupt
                version = self._watch(version)
                wait = BACKOFF[0]
            except Gone:
                log.info("watch_expired", kind=self.name, action="list again")
                self.healthy, version = False, None
                self.restarted(self.name, "gone")
            except (ApiError, httpx.HTTPError, httpx.StreamError, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                if self._relist.is_set():  # interrupted on purpose
                    self.restarted(self.name, "relist")
                    continue
                self.healthy = False
                self._report(exc, wait)
                self.restarted(self.name, "error")
                self._stop.wait(wait)
                wait = min(wait * 2, BACKOFF[1])

    def _list(self) -> str:
        """List every object into `listed` (which must take them all), as they stream in:
        only one object is in memory besides what the consumer keeps of each."""
        listing = MetadataList(self.client, self.kind, self._namespace)
        count = 0

        def objects() -> Iterator[dict[str, Any]]:
            nonlocal count
            for metadata in listing:
                count += 1
                yield metadata

        try:
            self.listed(objects())
        except ApiError as exc:
            if exc.status.code == 410:  # a page's continue token expired
                raise Gone() from None
            raise
        version = listing.resource_version
        log.info("listed", kind=self.name, count=count, resource_version=version)
        return version

    @property
    def _namespace(self) -> str | None:
        return "*" if issubclass(self.kind, NamespacedResource) else None

    def _watch(self, version: str) -> str:
        """Follow events from `version` until the server ends the watch; the last version."""
        params = {
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": WATCH_SECONDS,
        }
        response = self._open(params)
        stream = response.extensions.get("network_stream")
        with self._lock:
            self._socket = stream.get_extra_info("socket") if stream is not None else None
        try:
            self.healthy = True
            for line in response.iter_lines():
                if self._stop.is_set() or self._relist.is_set():
                    raise httpx.ReadError("interrupted")
                if line:
                    version = self._event(orjson.loads(line), version)
        finally:
            with self._lock:
                self._socket = None
            response.close()
        return version

    def _event(self, event: dict[str, Any], version: str) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ValueError(f"watch error: {obj.get('message') or obj}")
        metadata = _trimmed(obj)
        version = str(metadata.get("resourceVersion") or version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.changed(kind, metadata)
        return version

    def _open(self, params: dict[str, Any]) -> httpx.Response:
        """The watch's response, streaming (its events in JSON: one a line)."""
        generic = self.client._client
        request = generic.prepare_request(
            "list", self.kind, namespace=self._namespace, watch=True, params=params,
            headers={"Accept": METADATA_WATCH},
        )  # fmt: skip
        # The server ends the watch after WATCH_SECONDS; a read that waits longer is a
        # connection gone dead without a reset.
        request.timeout = httpx.Timeout(10.0, read=WATCH_SECONDS + 30)
        response: httpx.Response = generic.send(generic.build_adapter_request(request), True)
        if response.status_code == 410:
            response.close()
            raise Gone()
        if response.is_error:
            response.read()
            response.close()
        generic.raise_for_status(response)  # type: ignore[no-untyped-call]  # ApiError
        return response

    def _interrupt(self) -> None:
        """End the watch now: a read blocked on a quiet watch wakes only when its socket is
        shut down (closing the response from another thread leaves the read waiting)."""
        with self._lock:
            if self._socket is not None:
                with contextlib.suppress(OSError):
                    self._socket.shutdown(socket.SHUT_RDWR)

    def _report(self, exc: Exception, wait: float) -> None:
        """One clear line per failure; a missing permission once, with what to grant."""
        status = getattr(exc, "status", None)
        code = getattr(status, "code", None)
        if code in (401, 403):
            if not self._forbidden_said:
                self._forbidden_said = True
                log.error(
                    "audit_forbidden",
                    kind=self.name,
                    error=str(exc),
                    fix=f"grant list and watch on {self.name} (the chart's audit ClusterRole)",
                )
            return
        log.warning("watch_failed", kind=self.name, error=str(exc) or type(exc).__name__,
                    retry_in_seconds=wait)  # fmt: skip


def _trimmed(obj: dict[str, Any]) -> dict[str, Any]:
    """An event's object's metadata without managedFields: they mirror every field of the spec
    (most of a pod's metadata: ~10 KB a pod of a few containers), and are never read."""
    metadata: dict[str, Any] = obj.get("metadata") or {}
    metadata.pop("managedFields", None)
    return metadata
