"""Prometheus metrics of the service, declared once against a registry passed in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from injector.catalog import Catalog
from injector.errors import ERROR_REASONS, SKIP_REASONS
from injector.validation import KINDS, Kind

NAMESPACE = "sidecar_injector"

Outcome = Literal["injected", "skipped", "denied", "error"]
RequestReason = Literal["invalid_request", "unsupported_media_type", "body_too_large"]
"""Why an HTTP request to /mutate was refused before it became a review (a 4xx)."""
REQUEST_REASONS: tuple[RequestReason, ...] = get_args(RequestReason)
INTERNAL = "internal"
"""An unexpected exception while answering a review."""

OUTCOME_REASONS: dict[Outcome, tuple[str, ...]] = {
    "injected": ("ok",),
    "skipped": SKIP_REASONS,
    "denied": ERROR_REASONS,
    "error": (*ERROR_REASONS, INTERNAL, *REQUEST_REASONS),
}
"""Every label pair admission_requests_total can carry; all exist from start-up."""

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ReloadResult = Literal["success", "failure"]
RELOAD_RESULTS: tuple[ReloadResult, ...] = get_args(ReloadResult)
ValidationResult = Literal["allowed", "denied"]
VALIDATION_RESULTS: tuple[ValidationResult, ...] = get_args(ValidationResult)


class Metrics:
    """The metrics table of docs/service.md, with hot-path children resolved up front."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, namespace=NAMESPACE, registry=registry)

        self.requests = counter(
            "admission_requests",
            "Admission requests answered, by outcome and reason.",
            ("outcome", "reason"),
        )
        self.injections = counter(
            "injections", "Templates injected into admitted pods.", ("template",)
        )
        self.duration = Histogram(
            "admission_duration_seconds",
            "Time to answer one admission request.",
            namespace=NAMESPACE,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.templates_loaded = gauge("templates_loaded", "Templates available to requests.")
        self.template_load_errors = gauge(
            "template_load_errors", "Template files whose last load failed."
        )
        self.templates_last_good = gauge(
            "templates_last_good",
            "Templates that fail to load, served from the last-good ConfigMap (this process "
            "never loaded a good version of them).",
        )
        self.config_reloads = counter(
            "config_reloads", "Reloads of the templates directory, by result.", ("result",)
        )
        self.config_last_success = gauge(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last templates load without errors.",
        )
        self.tls_expiry = gauge(
            "tls_certificate_expiry_timestamp_seconds",
            "Unix time at which the serving certificate expires.",
        )
        self.tls_reloads = counter(
            "tls_reloads", "Reloads of the TLS certificate and key, by result.", ("result",)
        )
        self.config_validations = counter(
            "config_validations",
            "Templates ConfigMap edits and namespace inject labels judged by POST /validate, "
            "by kind and result.",
            ("kind", "result"),
        )
        self._requests = {
            (outcome, reason): self.requests.labels(outcome, reason)
            for outcome, reasons in OUTCOME_REASONS.items()
            for reason in reasons
        }
        self._injections: dict[str, Counter] = {}
        self._config_reloads = {r: self.config_reloads.labels(r) for r in RELOAD_RESULTS}
        self._tls_reloads = {r: self.tls_reloads.labels(r) for r in RELOAD_RESULTS}
        self._validations = {
            (kind, result): self.config_validations.labels(kind, result)
            for kind in KINDS
            for result in VALIDATION_RESULTS
        }

    def answered(self, outcome: Outcome, reason: str, seconds: float) -> None:
        """One request to /mutate got its answer."""
        self._requests[outcome, reason].inc()
        self.duration.observe(seconds)

    def injected(self, templates: Iterable[str]) -> None:
        for name in templates:
            child = self._injections.get(name)
            if child is None:
                child = self._injections[name] = self.injections.labels(name)
            child.inc()

    def catalog(self, catalog: Catalog, now: float) -> None:
        """A catalog was loaded: gauges follow it, its templates get their series."""
        self.templates_loaded.set(len(catalog.templates))
        self.template_load_errors.set(len(catalog.errors))
        self.templates_last_good.set(len(catalog.last_good))
        if not catalog.errors:
            self.config_last_success.set(now)
        for name in catalog.templates:
            if name not in self._injections:
                self._injections[name] = self.injections.labels(name)
        for name in [n for n in self._injections if n not in catalog.templates]:
            # One series per loaded template: a removed template's series goes with it.
            self.injections.remove(name)
            del self._injections[name]

    def templates_reloaded(self, catalog: Catalog, now: float) -> None:
        """A changed templates directory was loaded: a failure if any template has errors."""
        self._config_reloads["failure" if catalog.errors else "success"].inc()
        self.catalog(catalog, now)

    def templates_reload_failed(self) -> None:
        """A reload that could not even produce a catalog; the one serving stays."""
        self._config_reloads["failure"].inc()

    def validated(self, kind: Kind, result: ValidationResult) -> None:
        """A templates ConfigMap edit or a namespace label was answered (dry runs included)."""
        self._validations[kind, result].inc()

    def tls_reloaded(self, result: ReloadResult, expires_at: float) -> None:
        """A changed certificate or key was tried; `expires_at` is the one now serving."""
        self._tls_reloads[result].inc()
        self.tls_expiry.set(expires_at)
