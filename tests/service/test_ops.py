"""The operations port in process: metrics exposition, health, readiness, /debug/templates."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from injector.catalog import Catalog
from injector.errors import LoadError
from injector.loader import LoadResult
from injector.policy import Settings
from injector.service.metrics import OUTCOME_REASONS, Metrics
from tests.service.support import Harness, make_harness

pytestmark = pytest.mark.anyio


async def test_healthz(harness: Harness) -> None:
    answer = await harness.ops.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


async def test_readyz_follows_the_state(harness: Harness) -> None:
    ready = await harness.ops.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    harness.state.shutting_down = True
    draining = await harness.ops.get("/readyz")
    assert draining.status_code == 503
    assert draining.json()["checks"] == {
        "templates_loaded": True,
        "tls_loaded": True,
        "not_shutting_down": False,
    }


async def test_metrics_exposition_has_every_series_from_the_start(harness: Harness) -> None:
    answer = await harness.ops.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    requests = families["sidecar_injector_admission_requests"]
    pairs = {
        (s.labels["outcome"], s.labels["reason"])
        for s in requests.samples
        if s.name.endswith("_total")
    }
    assert pairs == {(o, r) for o, reasons in OUTCOME_REASONS.items() for r in reasons}
    templates = {s.labels["template"] for s in families["sidecar_injector_injections"].samples}
    assert templates >= {"db-proxy", "envoy-proxy", "log-shipper", "trace-agent"}
    assert families["sidecar_injector_templates_loaded"].samples[0].value == 4
    assert families["sidecar_injector_template_load_errors"].samples[0].value == 0
    for name in (
        "sidecar_injector_admission_duration_seconds",
        "sidecar_injector_config_reloads",
        "sidecar_injector_config_last_reload_success_timestamp_seconds",
        "sidecar_injector_tls_certificate_expiry_timestamp_seconds",
        "sidecar_injector_tls_reloads",
    ):
        assert name in families


async def test_metrics_speak_openmetrics_when_asked(harness: Harness) -> None:
    answer = await harness.ops.get(
        "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")


def test_duration_buckets_span_half_a_millisecond_to_two_and_a_half_seconds() -> None:
    registry = CollectorRegistry()
    Metrics(registry).answered("injected", "ok", 0.0003)
    buckets = [
        s.labels["le"]
        for m in registry.collect()
        if m.name == "sidecar_injector_admission_duration_seconds"
        for s in m.samples
        if s.name.endswith("_bucket")
    ]
    assert buckets[0] == "0.0005"
    assert buckets[-2:] == ["2.5", "+Inf"]
    assert (
        registry.get_sample_value(
            "sidecar_injector_admission_duration_seconds_bucket", {"le": "0.0005"}
        )
        == 1
    )


def test_load_errors_show_in_the_gauges_and_keep_the_success_time(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.catalog(catalog, 100.0)
    broken = catalog.merge(
        LoadResult(dict(catalog.templates), {"x": [LoadError("x.yaml", "invalid YAML")]})
    )
    metrics.catalog(broken, 200.0)
    assert registry.get_sample_value("sidecar_injector_template_load_errors") == 1
    assert registry.get_sample_value("sidecar_injector_templates_loaded") == 4
    assert (
        registry.get_sample_value("sidecar_injector_config_last_reload_success_timestamp_seconds")
        == 100.0
    )


def test_removed_templates_lose_their_injection_series(catalog: Catalog) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.catalog(catalog, 100.0)
    name = next(iter(catalog.templates))
    series = "sidecar_injector_injections_total"
    assert registry.get_sample_value(series, {"template": name}) == 0
    rest = {n: t for n, t in catalog.templates.items() if n != name}
    metrics.catalog(Catalog.from_load(LoadResult(rest, {})), 200.0)
    assert registry.get_sample_value(series, {"template": name}) is None
    assert all(registry.get_sample_value(series, {"template": n}) == 0 for n in rest)


async def test_debug_templates_lists_templates_digests_and_errors(catalog: Catalog) -> None:
    broken = catalog.merge(
        LoadResult(
            {n: t for n, t in catalog.templates.items() if n != "trace-agent"},
            {
                "trace-agent": [LoadError("trace-agent.yaml", "unknown key", "spec", 4)],
                "gone": [LoadError("gone.yaml", "invalid YAML", line=1)],
            },
        )
    )
    settings = Settings(
        default_templates=("log-shipper",), profiles={"mesh": ("envoy-proxy", "gone")}
    )
    harness = make_harness(broken, settings=settings)
    answer = await harness.ops.get("/debug/templates")
    assert answer.status_code == 200
    body = answer.json()
    by_name = {t["name"]: t for t in body["templates"]}
    assert set(by_name) == {"db-proxy", "envoy-proxy", "log-shipper", "trace-agent"}
    assert by_name["db-proxy"]["sidecars"] == ["db-proxy"]
    shipper = by_name["log-shipper"]
    assert shipper["digest"] == catalog.templates["log-shipper"].digest
    assert shipper["containers"] == ["log-shipper"]
    assert shipper["parameters"]["logLevel"] == {
        "type": "string",
        "default": "info",
        "overridable": True,
    }
    assert shipper["namespaces"] == []
    assert shipper["stale"] is False
    assert by_name["trace-agent"]["stale"] is True
    assert body["errors"] == {
        "trace-agent": ["trace-agent.yaml:4: spec: unknown key"],
        "gone": ["gone.yaml:1: invalid YAML"],
    }
    assert body["broken"] == ["gone"]
    assert body["profiles"] == {
        "mesh": {"templates": ["envoy-proxy", "gone"], "missing": ["gone"]},
        "enabled": {"templates": ["log-shipper"], "missing": []},
    }


async def test_debug_templates_is_read_only(harness: Harness) -> None:
    assert (await harness.ops.post("/debug/templates")).status_code == 405
    assert (await harness.ops.get("/nothing")).status_code == 404
