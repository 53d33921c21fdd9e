"""The last-good ConfigMap: the last version of each template that loaded, kept by the audit in a
ConfigMap that outlives any replica. The webhook mounts it (`--last-good-dir`) and serves from it
a template that fails to load and that the replica never loaded itself, so a broken edit that got
past validation never turns into denied pods when a replica restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import structlog
from lightkube import ApiError, Client
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType
from prometheus_client import CollectorRegistry, Counter, Gauge

from injector.catalog import Catalog
from injector.loader import SUFFIX
from injector.service.metrics import NAMESPACE

log = structlog.get_logger("injector.audit.lastgood")

RETRY_SECONDS = 30.0
"""After a failed write, wait this long before the next try."""
RESYNC_SECONDS = 300.0
"""Compare with the ConfigMap this often even when nothing changed here: an edit by hand, or
the ConfigMap recreated by `helm upgrade`, is repaired."""


def patch_of(catalog: Catalog, held: Mapping[str, str]) -> dict[str, str | None]:
    """The JSON merge patch of `data` that makes `held` keep what `catalog` serves: every served
    template's text (its good version, or the previous one where the newest fails), a template
    gone from the templates ConfigMap removed, and a broken template with nothing served here,
    or served from the ConfigMap itself, left as it is — that key is exactly what a restarting
    replica needs."""
    patch: dict[str, str | None] = {
        name + SUFFIX: template.source
        for name, template in catalog.templates.items()
        # A version served from the audit's own mount of this ConfigMap came from it, and the
        # mount can lag behind it: never written back over what it holds now.
        if template.source
        and name not in catalog.last_good
        and held.get(name + SUFFIX) != template.source
    }
    for key in held:
        name = key.removesuffix(SUFFIX)
        if name not in catalog.templates and name not in catalog.errors:
            patch[key] = None
    return patch


class LastGood:
    """Keeps the ConfigMap `namespace/name` in step with the audit's catalog. Only `get` and
    `patch` on that one ConfigMap are needed (the chart creates it, empty, and grants exactly
    that): the writes go through the API server, whose token the webhook's pods never get."""

    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.clock = clock
        self.written: Catalog | None = None
        self.retry_at = 0.0
        self.resync_at = 0.0
        self.writes = Counter(
            "audit_last_good_writes",
            "Updates of the last-good ConfigMap, by result.",
            ("result",),
            namespace=NAMESPACE,
            registry=registry,
        )
        self._writes = {r: self.writes.labels(r) for r in ("success", "failure")}
        self.in_step = Gauge(
            "audit_last_good_synced",
            "1 while the last-good ConfigMap holds every template the audit serves.",
            namespace=NAMESPACE,
            registry=registry,
        )

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def due(self, catalog: Catalog) -> bool:
        """Whether `sync` should run now: a catalog not written yet, or time to compare again;
        never before the retry time after a failure."""
        now = self.clock()
        if now < self.retry_at:
            return False
        return catalog is not self.written or now >= self.resync_at

    def sync(self, catalog: Catalog) -> None:
        """Bring the ConfigMap in step with `catalog` (blocking: run it in a thread). A failure
        is logged with what it means and retried later; the audit goes on."""
        try:
            configmap = self.client.get(ConfigMap, self.name, namespace=self.namespace)
            patch = patch_of(catalog, configmap.data or {})
            if patch:
                self.client.patch(
                    ConfigMap,
                    self.name,
                    {"data": patch},
                    namespace=self.namespace,
                    patch_type=PatchType.MERGE,
                )
        except ApiError as exc:
            self._failed(_explain(exc, self.where))
            return
        except Exception as exc:  # the API server unreachable: retried like a refusal
            self._failed(f"cannot update configmap {self.where}: {exc}")
            return
        if patch:
            self._writes["success"].inc()
            log.info(
                "last_good_updated",
                configmap=self.where,
                kept=sorted(k.removesuffix(SUFFIX) for k, v in patch.items() if v is not None),
                removed=sorted(k.removesuffix(SUFFIX) for k, v in patch.items() if v is None),
            )
        self.written = catalog
        self.in_step.set(1)
        self.resync_at = self.clock() + RESYNC_SECONDS

    def _failed(self, error: str) -> None:
        self._writes["failure"].inc()
        self.in_step.set(0)
        self.retry_at = self.clock() + RETRY_SECONDS
        log.error(
            "last_good_update_failed",
            configmap=self.where,
            error=error,
            consequence="a webhook replica that starts while a template fails to load denies "
            "pods asking for it",
            retry_in_seconds=RETRY_SECONDS,
        )


def _explain(exc: ApiError, where: str) -> str:
    code = exc.status.code
    if code == 404:
        return f"configmap {where} not found: the chart creates it (helm upgrade restores it)"
    if code == 403:
        return (
            f"forbidden to get and patch configmap {where}: the chart's audit Role grants "
            "exactly that; check the Role and its binding"
        )
    return f"configmap {where}: {code} {exc.status.message}"
