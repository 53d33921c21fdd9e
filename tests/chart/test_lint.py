"""helm lint --strict on every value set, and the values the chart must refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helm import CI_VALUES, Helm


def test_there_are_ci_value_sets() -> None:
    assert {p.stem for p in CI_VALUES} >= {
        "own-issuer-values",
        "existing-issuer-values",
        "no-cert-manager-values",
        "external-url-values",
        "monitoring-values",
        "existing-configmap-values",
    }


@pytest.mark.parametrize(
    "values_file", [None, *CI_VALUES], ids=["defaults", *(p.stem for p in CI_VALUES)]
)
def test_lint_strict(helm: Helm, values_file: Path | None) -> None:
    result = helm.lint([values_file] if values_file else [])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


SCHEMA_REJECTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level key": ({"replicas": 3}, "replicas"),
    "unknown nested key": ({"webhook": {"failPolicy": "Fail"}}, "webhook/failPolicy"),
    "unknown probe key": ({"livenessProbe": {"httpGet": {}}}, "livenessProbe/httpGet"),
    "unknown template key": (
        {"templates": {"x": {"container": []}}},
        "templates/container",
    ),
    "bad enum onError": ({"config": {"onError": "ignore"}}, "config/onError"),
    "bad enum logLevel": ({"config": {"logLevel": "trace"}}, "config/logLevel"),
    "bad enum failurePolicy": ({"webhook": {"failurePolicy": "fail"}}, "webhook/failurePolicy"),
    "bad enum reinvocationPolicy": (
        {"webhook": {"reinvocationPolicy": "Always"}},
        "webhook/reinvocationPolicy",
    ),
    "bad enum key algorithm": (
        {"certManager": {"certificate": {"algorithm": "DSA"}}},
        "certManager/certificate",
    ),
    "ECDSA key size of RSA": (
        {"certManager": {"ca": {"algorithm": "ECDSA", "size": 2048}}},
        "certManager/ca",
    ),
    "timeout above 30": ({"webhook": {"timeoutSeconds": 31}}, "webhook/timeoutSeconds"),
    "timeout below 1": ({"webhook": {"timeoutSeconds": 0}}, "webhook/timeoutSeconds"),
    "port 0": ({"config": {"port": 0}}, "config/port"),
    "port above 65535": ({"config": {"metricsPort": 70000}}, "config/metricsPort"),
    "no replicas": ({"replicaCount": 0}, "replicaCount"),
    "tiny body limit": ({"config": {"maxBodyBytes": 10}}, "config/maxBodyBytes"),
    "negative drain": ({"config": {"shutdownDelaySeconds": -1}}, "config/shutdownDelaySeconds"),
    "string where int": ({"config": {"port": "8443"}}, "config/port"),
    "template name not DNS-1123": (
        {"templates": {"Log_Shipper": {}}},
        "Log_Shipper",
    ),
    "annotation prefix with a slash": (
        {"config": {"annotationPrefix": "example.com/x"}},
        "config/annotationPrefix",
    ),
    "webhook name with two labels": ({"webhook": {"name": "sidecar.io"}}, "webhook/name"),
    "plain-HTTP webhook url": ({"webhook": {"url": "http://x.example.com/"}}, "webhook/url"),
    "digest not sha256": ({"image": {"digest": "md5:abc"}}, "image/digest"),
    "bad duration": ({"certManager": {"ca": {"duration": "10y"}}}, "certManager/ca/duration"),
    "failure ratio of 100 %": (
        {"metrics": {"prometheusRule": {"failureRatio": 1}}},
        "metrics/prometheusRule/failureRatio",
    ),
    "latency threshold beyond the histogram's buckets": (
        {"metrics": {"prometheusRule": {"latencyP99Seconds": 2.5}}},
        "metrics/prometheusRule/latencyP99Seconds",
    ),
    "Go duration where Prometheus wants its own": (
        {"metrics": {"prometheusRule": {"failureRatioFor": "1.5m"}}},
        "metrics/prometheusRule/failureRatioFor",
    ),
    "certificate expiry of 0 days": (
        {"metrics": {"prometheusRule": {"certExpiryDays": 0}}},
        "metrics/prometheusRule/certExpiryDays",
    ),
    "dashboard namespace not a DNS label": (
        {"metrics": {"dashboard": {"namespace": "Monitoring"}}},
        "metrics/dashboard/namespace",
    ),
    "bad selector operator": (
        {"webhook": {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}},
        "webhook/namespaceSelector",
    ),
}


@pytest.mark.parametrize(
    ("values", "path"), SCHEMA_REJECTIONS.values(), ids=SCHEMA_REJECTIONS.keys()
)
def test_schema_rejects(helm: Helm, values: dict[str, Any], path: str) -> None:
    error = helm.template_error(values)
    assert "values don't meet the specifications of the schema" in error
    # Each part of the offending path, not the exact wording: Helm releases word it differently.
    for part in path.split("/"):
        assert part in error


TEMPLATE_REJECTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "no cert-manager without a Secret": (
        {"certManager": {"enabled": False}, "webhook": {"caBundle": "Zm9v"}},
        "tls.existingSecret is required",
    ),
    "no cert-manager without a CA bundle": (
        {"certManager": {"enabled": False}, "tls": {"existingSecret": "tls"}},
        "webhook.caBundle is required",
    ),
    "grace period not above drain + graceful stop": (
        {"terminationGracePeriodSeconds": 15},
        "terminationGracePeriodSeconds (15) must exceed",
    ),
}


@pytest.mark.parametrize(
    ("values", "message"), TEMPLATE_REJECTIONS.values(), ids=TEMPLATE_REJECTIONS.keys()
)
def test_inconsistent_values_fail(helm: Helm, values: dict[str, Any], message: str) -> None:
    assert message in helm.template_error(values)
