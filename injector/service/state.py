"""What requests read and probes report: the current catalog (swapped whole) and readiness."""

from __future__ import annotations

from dataclasses import dataclass, field

from injector.catalog import Catalog
from injector.policy import Settings
from injector.service.config import OnError


@dataclass
class State:
    """Shared by the apps of one process. A request reads `catalog` once and keeps that object,
    so a reload replaces the reference and never mutates a catalog in use."""

    settings: Settings
    on_error: OnError
    catalog: Catalog = field(default_factory=Catalog)
    templates_loaded: bool = False
    tls_loaded: bool = False
    shutting_down: bool = False

    def swap_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.templates_loaded = True

    def readiness(self) -> dict[str, bool]:
        """Each readiness check by name; ready only when all pass."""
        return {
            "templates_loaded": self.templates_loaded,
            "tls_loaded": self.tls_loaded,
            "not_shutting_down": not self.shutting_down,
        }
