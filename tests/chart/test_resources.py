"""Certificates, Service, ServiceAccount, PodDisruptionBudget, NetworkPolicy, helm test Pod."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helm import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    Helm,
    Manifest,
    component,
    named,
    only,
    webhook_object,
)

STANDARD_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
}


CLUSTER_SCOPED = {
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ClusterRole",
    "ClusterRoleBinding",
}


def test_standard_labels_and_namespace_everywhere(default_docs: list[Manifest]) -> None:
    for doc in default_docs:
        assert set(doc["metadata"]["labels"]) >= STANDARD_LABELS, doc["kind"]
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_own_ca_chain(default_docs: list[Manifest]) -> None:
    selfsigned = named(default_docs, "Issuer", f"{RELEASE}-selfsigned")
    assert selfsigned["spec"] == {"selfSigned": {}}
    ca = named(default_docs, "Certificate", f"{RELEASE}-ca")
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "Issuer",
        "name": selfsigned["metadata"]["name"],
    }
    # Keeping the CA key on renewal keeps already-issued serving certificates valid.
    assert ca["spec"]["privateKey"]["rotationPolicy"] == "Never"
    ca_issuer = named(default_docs, "Issuer", f"{RELEASE}-ca")
    assert ca_issuer["spec"] == {"ca": {"secretName": ca["spec"]["secretName"]}}
    serving = named(default_docs, "Certificate", f"{RELEASE}-serving")
    assert serving["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "Issuer",
        "name": ca_issuer["metadata"]["name"],
    }
    assert serving["spec"]["privateKey"]["rotationPolicy"] == "Always"
    assert "server auth" in serving["spec"]["usages"]


def hours(duration: str) -> int:
    assert duration.endswith("h")
    return int(duration[:-1])


def test_ca_outlives_serving_certificate(default_docs: list[Manifest]) -> None:
    ca = named(default_docs, "Certificate", f"{RELEASE}-ca")["spec"]
    serving = named(default_docs, "Certificate", f"{RELEASE}-serving")["spec"]
    assert hours(ca["duration"]) >= 10 * hours(serving["duration"])
    assert hours(serving["renewBefore"]) < hours(serving["duration"])


def test_serving_certificate_names_the_service(helm: Helm) -> None:
    values = {
        "clusterDomain": "k8s.example.internal",
        "certManager": {"certificate": {"extraDnsNames": ["injector.example.com"]}},
    }
    docs = helm.template(values, namespace="platform")
    service = webhook_object(docs, "Service")["metadata"]["name"]
    serving = named(docs, "Certificate", f"{RELEASE}-serving")
    assert serving["spec"]["dnsNames"] == [
        f"{service}.platform.svc",
        f"{service}.platform.svc.k8s.example.internal",
        "injector.example.com",
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ({"algorithm": "RSA", "size": 3072}, {"algorithm": "RSA", "size": 3072}),
        ({"algorithm": "Ed25519"}, {"algorithm": "Ed25519"}),
    ],
    ids=["rsa", "ed25519"],
)
def test_key_algorithms(helm: Helm, key: dict[str, Any], expected: dict[str, Any]) -> None:
    docs = helm.template({"certManager": {"ca": key, "certificate": key}})
    for doc in docs:
        if doc["kind"] == "Certificate":
            got = {k: v for k, v in doc["spec"]["privateKey"].items() if k != "rotationPolicy"}
            assert got == expected


def test_existing_issuer_creates_no_issuers(helm: Helm) -> None:
    docs = helm.template({"certManager": {"issuerRef": {"name": "corp", "kind": "ClusterIssuer"}}})
    assert [d["kind"] for d in docs if d["apiVersion"].startswith("cert-manager.io")] == [
        "Certificate"
    ]


def test_service_ports(default_docs: list[Manifest]) -> None:
    service = webhook_object(default_docs, "Service")
    deployment = webhook_object(default_docs, "Deployment")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {
            "name": "https",
            "port": 443,
            "targetPort": "https",
            "protocol": "TCP",
            "appProtocol": "https",
        },
        {
            "name": "metrics",
            "port": 8080,
            "targetPort": "metrics",
            "protocol": "TCP",
            "appProtocol": "http",
        },
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_service_account(helm: Helm, default_docs: list[Manifest]) -> None:
    account = webhook_object(default_docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    pod = webhook_object(default_docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    docs = helm.template({"serviceAccount": {"create": False, "name": "shared"}})
    assert not [d for d in docs if d["kind"] == "ServiceAccount" and component(d) == "webhook"]
    pod = webhook_object(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "shared"


def test_pod_disruption_budget(helm: Helm, default_docs: list[Manifest]) -> None:
    pdb = only(default_docs, "PodDisruptionBudget")
    deployment = webhook_object(default_docs, "Deployment")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": deployment["spec"]["selector"],
    }
    docs = helm.template({"podDisruptionBudget": {"enabled": False}})
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]


def test_network_policy(helm: Helm) -> None:
    prometheus = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    docs = helm.template({"networkPolicy": {"enabled": True, "metricsFrom": [prometheus]}})
    policy = webhook_object(docs, "NetworkPolicy")["spec"]
    deployment = webhook_object(docs, "Deployment")
    assert policy["podSelector"] == deployment["spec"]["selector"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    webhook, metrics = policy["ingress"]
    assert webhook == {"ports": [{"port": "https", "protocol": "TCP"}]}
    assert metrics == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [prometheus]}
    assert policy["egress"] == []
    port_names = {
        p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert {"https", "metrics"} <= port_names


def test_helm_test_pod(default_docs: list[Manifest]) -> None:
    pod = only(default_docs, "Pod")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert annotations["sidecar-injector.io/inject"] == "helm-test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    [check] = spec["containers"]
    assert check["image"] == "busybox:1.36.1"
    assert check["securityContext"]["readOnlyRootFilesystem"] is True
    assert check["securityContext"]["allowPrivilegeEscalation"] is False
    # What the helm-test template injects is exactly what the Pod checks for.
    template = yaml.safe_load((CHART_DIR / "files" / "helm-test.yaml").read_text())
    [env] = template["env"]
    assert env["name"] in check["command"][-1]
    expected = {e["name"]: e["value"] for e in check["env"]}["EXPECTED"]
    rendered = env["value"].replace("{{ pod.namespace }}", NAMESPACE)
    rendered = rendered.replace("{{ pod.name }}", pod["metadata"]["name"])
    assert expected == rendered


def run_check(script: str, env: dict[str, str]) -> int:
    """Run the test Pod's shell check with the given environment."""
    shell = shutil.which("sh")
    assert shell
    return subprocess.run(
        [shell, "-c", script], env=env, capture_output=True, check=False
    ).returncode


def test_helm_test_script_passes_only_when_injected(default_docs: list[Manifest]) -> None:
    [check] = only(default_docs, "Pod")["spec"]["containers"]
    script: str = check["command"][-1]
    expected = {e["name"]: e["value"] for e in check["env"]}["EXPECTED"]
    assert run_check(script, {"EXPECTED": expected, "SIDECAR_INJECTOR_HELM_TEST": expected}) == 0
    assert run_check(script, {"EXPECTED": expected}) != 0
    assert run_check(script, {"EXPECTED": expected, "SIDECAR_INJECTOR_HELM_TEST": "x"}) != 0


def test_helm_test_pod_follows_annotation_prefix(helm: Helm) -> None:
    docs = helm.template({"config": {"annotationPrefix": "injector.example.com"}})
    annotations = only(docs, "Pod")["metadata"]["annotations"]
    assert annotations["injector.example.com/inject"] == "helm-test"


def test_kube_version_floor(helm: Helm) -> None:
    chart = str(CHART_DIR)
    assert helm.run("template", "x", chart, "--kube-version", "1.28.0").returncode == 0
    old = helm.run("template", "x", chart, "--kube-version", "1.27.9")
    assert old.returncode != 0
    assert "chart requires kubeVersion: >=1.28.0-0" in old.stderr


def test_helm_test_pod_is_injected_by_the_offline_cli(
    default_docs: list[Manifest], tmp_path: Path
) -> None:
    """The chart's ConfigMap, laid out as the kubelet would, injects what the test Pod wants."""
    templates = tmp_path / "templates"
    templates.mkdir()
    templates_configmap = named(default_docs, "ConfigMap", f"{RELEASE}-templates")
    for key, text in templates_configmap["data"].items():
        (templates / key).write_text(text)
    pod = only(default_docs, "Pod")
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))
    result = subprocess.run(
        [sys.executable, "-m", "injector.cli", "inject", "-f", str(manifest)]
        + ["--templates-dir", str(templates)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [check] = yaml.safe_load(result.stdout)["spec"]["containers"]
    env = {e["name"]: e["value"] for e in check["env"]}
    assert env["SIDECAR_INJECTOR_HELM_TEST"] == env["EXPECTED"]


def test_reader_roles_only_read_and_reach_the_replicas_through_the_proxy(
    default_docs: list[Manifest],
) -> None:
    cluster = named(default_docs, "ClusterRole", f"{RELEASE}-reader")
    role = named(default_docs, "Role", f"{RELEASE}-reader")
    for rules in (cluster["rules"], role["rules"]):
        assert all(set(r["verbs"]) <= {"get", "list"} for r in rules)
    granted = {
        (resource, verb)
        for rule in cluster["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # outdated: pods and namespaces as metadata, the owners of ReplicaSets and Jobs
    assert {
        ("pods", "list"),
        ("namespaces", "list"),
        ("replicasets", "list"),
        ("jobs", "list"),
    } <= granted
    proxy = [r for r in role["rules"] if "pods/proxy" in r["resources"]]
    assert proxy == [{"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]}]
    assert not any("pods/proxy" in r["resources"] for r in cluster["rules"])
