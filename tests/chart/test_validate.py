"""Every rendered object validated against the Kubernetes and cert-manager schemas."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
from cloudcoil.models.cert_manager import v1 as cert_manager
from pydantic import BaseModel

from .helm import AUDIT_KINDS, CI_VALUES, Helm, Manifest, kinds, webhook_object

VALUE_SETS: dict[str, Path | None] = {"defaults": None, **{p.stem: p for p in CI_VALUES}}
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema.
K8S_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
BUILT_IN_GROUPS = {
    "",
    "apps",
    "policy",
    "networking.k8s.io",
    "admissionregistration.k8s.io",
    "rbac.authorization.k8s.io",
}
CERT_MANAGER_MODELS: dict[str, type[BaseModel]] = {
    "Certificate": cert_manager.Certificate,
    "Issuer": cert_manager.Issuer,
    "ClusterIssuer": cert_manager.ClusterIssuer,
}

ALWAYS = [
    "ClusterRole",
    "ConfigMap",
    "Deployment",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "PodDisruptionBudget",
    "Role",
    "Service",
    "ServiceAccount",
]
OWN_CA = ["Certificate", "Certificate", "Issuer", "Issuer"]
HELM_TEST = ["Pod"]
AUDIT = AUDIT_KINDS
WEBHOOK_KINDS: dict[str, list[str]] = {
    "defaults": ALWAYS + OWN_CA + HELM_TEST,
    "own-issuer-values": ALWAYS + OWN_CA + HELM_TEST,
    "existing-issuer-values": ALWAYS + ["Certificate"] + HELM_TEST,
    "no-cert-manager-values": ALWAYS + HELM_TEST,
    "external-url-values": ALWAYS + OWN_CA + HELM_TEST,
    "profiles-values": ALWAYS + OWN_CA + HELM_TEST,
    "monitoring-values": ALWAYS
    + OWN_CA
    + HELM_TEST
    + ["ConfigMap", "NetworkPolicy", "PrometheusRule", "ServiceMonitor"]
    + ["NetworkPolicy", "ServiceMonitor"],
    "existing-configmap-values": [k for k in ALWAYS if k not in ("ConfigMap", "ServiceAccount")]
    + OWN_CA,
}
# The audit is on by default: its objects come on top of every set.
EXPECTED_KINDS = {name: found + AUDIT for name, found in WEBHOOK_KINDS.items()}


def render(helm: Helm, name: str) -> list[Manifest]:
    values_file = VALUE_SETS[name]
    return helm.template(values_files=[values_file] if values_file else [])


def group(doc: Manifest) -> str:
    api_version: str = doc["apiVersion"]
    return api_version.rpartition("/")[0]


def test_every_value_set_has_expected_kinds() -> None:
    assert set(EXPECTED_KINDS) == set(VALUE_SETS)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_renders_expected_kinds(helm: Helm, name: str) -> None:
    assert kinds(render(helm, name)) == sorted(EXPECTED_KINDS[name])


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_built_in_objects_match_kubernetes_schema(helm: Helm, name: str, version: str) -> None:
    built_in = [d for d in render(helm, name) if group(d) in BUILT_IN_GROUPS]
    assert built_in
    for doc in built_in:
        where = f"{doc['kind']}/{doc['metadata']['name']} ({name}, Kubernetes {version})"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: no schema for a built-in kind: {exc.message}")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_cert_manager_objects_match_cert_manager_schema(helm: Helm, name: str) -> None:
    for doc in render(helm, name):
        if group(doc) != "cert-manager.io":
            continue
        model = CERT_MANAGER_MODELS[doc["kind"]].model_validate(doc)
        # The models drop fields they do not know: a difference is an unknown field.
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc


def test_service_monitor_shape(helm: Helm) -> None:
    """ServiceMonitor is a CRD kubernetes-validate does not know: check it by hand."""
    docs = render(helm, "monitoring-values")
    monitor = webhook_object(docs, "ServiceMonitor")
    service = webhook_object(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"namespaceSelector", "selector", "endpoints"}
    assert monitor["spec"]["namespaceSelector"] == {
        "matchNames": [service["metadata"]["namespace"]]
    }
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {
            "port",
            "path",
            "scheme",
            "interval",
            "scrapeTimeout",
            "relabelings",
        }
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert endpoint["scheme"] == "http"
        # The job label is the Service's name: what the alerts and the dashboard select.
        assert endpoint["relabelings"] == [
            {"action": "replace", "targetLabel": "job", "replacement": service["metadata"]["name"]}
        ]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


VALIDATING_VARIANTS: dict[str, dict[str, object]] = {
    "both entries": {},
    "namespace labels only": {"webhook": {"validateTemplates": False}},
    "templates only": {"webhook": {"validateNamespaceLabels": False}},
    "url, namespace labels only": {
        "webhook": {
            "validateTemplates": False,
            "url": "https://hooks.example.com/injector/mutate",
            "caBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        },
        "certManager": {"enabled": False},
        "tls": {"existingSecret": "injector-tls"},
    },
    "custom prefix": {"config": {"annotationPrefix": "inject.example.com"}},
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", VALIDATING_VARIANTS)
def test_each_validating_configuration_matches_kubernetes_schema(
    helm: Helm, variant: str, version: str
) -> None:
    """Whichever entries are on, in Service and URL mode (the CEL of matchConditions compiles
    on a real apiserver: e2e cluster mode installs it)."""
    docs = helm.template(VALIDATING_VARIANTS[variant])
    [doc] = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{variant}, Kubernetes {version}: {exc.message} at {list(exc.path)}")
