"""The webhook Deployment: the service's flags, mounts, probes, security and scheduling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from injector.service.config import FLAGS

from .helm import CHART_DIR, CI_VALUES, Helm, Manifest, flags, webhook_container, webhook_object

DEPLOYMENT = "templates/webhook-deployment.yaml"
CHART_VALUES: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
APP_VERSION: str = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]

# Every flag of `sidecar-injector serve` (the service's contract) except --dev.
SERVE_FLAGS = {
    "--templates-dir",
    "--last-good-dir",
    "--tls-cert",
    "--tls-key",
    "--host",
    "--port",
    "--metrics-port",
    "--annotation-prefix",
    "--default-templates",
    "--exclude-namespaces",
    "--on-error",
    "--max-body-bytes",
    "--log-level",
    "--log-format",
    "--shutdown-delay",
    "--graceful-timeout",
    "--profile",
    "--native-sidecars",
}


def deployment(helm: Helm, values: dict[str, Any] | None = None) -> Manifest:
    [doc] = helm.template(values, show_only=[DEPLOYMENT])
    assert doc["kind"] == "Deployment"
    return doc


def pod_spec(helm: Helm, values: dict[str, Any] | None = None) -> Manifest:
    spec: Manifest = deployment(helm, values)["spec"]["template"]["spec"]
    return spec


def container(helm: Helm, values: dict[str, Any] | None = None) -> Manifest:
    return webhook_container([deployment(helm, values)])


def test_default_args(helm: Helm) -> None:
    args = container(helm)["args"]
    assert args[0] == "serve"
    assert flags(container(helm)) == {
        "--host": "0.0.0.0",
        "--port": "8443",
        "--metrics-port": "8080",
        "--templates-dir": "/etc/sidecar-injector/templates",
        "--tls-cert": "/etc/sidecar-injector/tls/tls.crt",
        "--tls-key": "/etc/sidecar-injector/tls/tls.key",
        "--annotation-prefix": "sidecar-injector.io",
        "--default-templates": "",
        "--exclude-namespaces": "kube-system,kube-public,kube-node-lease",
        "--native-sidecars": "true",
        "--on-error": "deny",
        "--max-body-bytes": "3145728",
        "--log-level": "info",
        "--log-format": "json",
        "--shutdown-delay": "5",
        "--graceful-timeout": "10",
        "--last-good-dir": "/etc/sidecar-injector/last-good",
    }
    assert set(flags(container(helm))) == SERVE_FLAGS - {"--profile"}, "one per profile"
    assert "command" not in container(helm), "the image's ENTRYPOINT runs the service"


def test_every_config_value_reaches_the_args(helm: Helm) -> None:
    config = {
        "annotationPrefix": "injector.example.com",
        "defaultTemplates": ["log-shipper", "trace-agent"],
        "profiles": {"mesh": ["envoy-proxy", "trace-agent"], "logs": ["log-shipper"]},
        "nativeSidecars": False,
        "excludeNamespaces": ["monitoring"],
        "onError": "allow",
        "maxBodyBytes": 10485760,
        "logLevel": "warning",
        "logFormat": "console",
        "host": "::",
        "port": 9443,
        "metricsPort": 9090,
        "shutdownDelaySeconds": 8,
        "gracefulTimeoutSeconds": 30,
    }
    assert set(config) == set(CHART_VALUES["config"]), "a config value is not exercised here"
    assert {f"--{f.name}" for f in FLAGS} - {"--dev"} == SERVE_FLAGS
    values = {"config": config, "extraArgs": ["--log-level=debug"]}
    got = container(helm, values)
    assert got["args"][-1] == "--log-level=debug", "extraArgs come last, so they win"
    assert [a for a in got["args"] if a.startswith("--profile")] == [
        "--profile=logs=log-shipper",
        "--profile=mesh=envoy-proxy,trace-agent",
    ]
    assert flags(got | {"args": got["args"][:-1]}) == {
        "--host": "::",
        "--port": "9443",
        "--metrics-port": "9090",
        "--templates-dir": "/etc/sidecar-injector/templates",
        "--tls-cert": "/etc/sidecar-injector/tls/tls.crt",
        "--tls-key": "/etc/sidecar-injector/tls/tls.key",
        "--annotation-prefix": "injector.example.com",
        "--default-templates": "log-shipper,trace-agent",
        "--exclude-namespaces": "kube-system,monitoring",
        "--native-sidecars": "false",
        "--on-error": "allow",
        "--max-body-bytes": "10485760",
        "--log-level": "warning",
        "--log-format": "console",
        "--shutdown-delay": "8",
        "--graceful-timeout": "30",
        "--profile": "logs=log-shipper;mesh=envoy-proxy,trace-agent",
        "--last-good-dir": "/etc/sidecar-injector/last-good",
    }
    assert {p["name"]: p["containerPort"] for p in got["ports"]} == {"https": 9443, "metrics": 9090}


@pytest.mark.parametrize(
    ("setting", "kube_version", "native"),
    [
        ("auto", "1.28.9", "false"),
        ("auto", "1.29.0", "true"),
        ("auto", "1.30.4", "true"),
        ("auto", "v1.30.2-eks-1552ad0", "true"),
        ("auto", "v1.28.15-gke.1020000", "false"),
        (True, "1.28.9", "true"),
        ("true", "1.28.9", "true"),
        (False, "1.31.0", "false"),
        ("false", "1.31.0", "false"),
    ],
)
def test_native_sidecars_follow_the_cluster_version_unless_set(
    helm: Helm, setting: object, kube_version: str, native: str
) -> None:
    docs = helm.template(
        {"config": {"nativeSidecars": setting}}, show_only=[DEPLOYMENT], kube_version=kube_version
    )
    assert flags(webhook_container(docs))["--native-sidecars"] == native


def test_native_sidecars_refuses_other_values(helm: Helm) -> None:
    assert "nativeSidecars" in helm.template_error({"config": {"nativeSidecars": "yes"}})


def test_extra_env(helm: Helm) -> None:
    env = [{"name": "SIDECAR_INJECTOR_LOG_LEVEL", "value": "debug"}]
    assert container(helm, {"extraEnv": env})["env"] == env
    assert "env" not in container(helm)


def test_mounts_match_the_path_flags(helm: Helm) -> None:
    c = container(helm)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    args = flags(c)
    assert set(mounts) == {
        "/etc/sidecar-injector/templates",
        "/etc/sidecar-injector/last-good",
        "/etc/sidecar-injector/tls",
        "/tmp",
    }
    assert args["--templates-dir"] == "/etc/sidecar-injector/templates"
    assert args["--last-good-dir"] == "/etc/sidecar-injector/last-good"
    for key in ("--tls-cert", "--tls-key"):
        assert str(Path(args[key]).parent) == "/etc/sidecar-injector/tls"
    assert mounts["/etc/sidecar-injector/templates"]["readOnly"] is True
    assert mounts["/etc/sidecar-injector/tls"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod_spec(helm)["volumes"]}
    assert volumes[mounts["/etc/sidecar-injector/templates"]["name"]]["configMap"] == {
        "name": "sidecar-injector-templates"
    }
    assert volumes[mounts["/etc/sidecar-injector/tls"]["name"]]["secret"] == {
        "secretName": "sidecar-injector-tls"
    }
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


@pytest.mark.parametrize(
    "values_file", [None, *CI_VALUES], ids=["defaults", *(p.stem for p in CI_VALUES)]
)
def test_no_sub_path_anywhere(helm: Helm, values_file: Path | None) -> None:
    """subPath mounts never see the kubelet's updates: templates and certs would go stale."""
    docs = helm.template(values_files=[values_file] if values_file else [])
    assert "subPath" not in yaml.safe_dump(docs)


def test_serving_secret_is_the_certificates_secret(helm: Helm) -> None:
    docs = helm.template()
    [serving] = [d for d in docs if d["kind"] == "Certificate" and not d["spec"].get("isCA", False)]
    volumes = {v["name"]: v for v in pod_spec(helm)["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == serving["spec"]["secretName"]


def test_existing_tls_secret_and_configmap(helm: Helm) -> None:
    values = {
        "certManager": {"enabled": False},
        "tls": {"existingSecret": "my-tls"},
        "webhook": {"caBundle": "Zm9v"},
        "templatesConfigMap": {"existing": "gitops-templates"},
    }
    volumes = {v["name"]: v for v in pod_spec(helm, values)["volumes"]}
    assert volumes["tls"]["secret"] == {"secretName": "my-tls"}
    assert volumes["templates"]["configMap"] == {"name": "gitops-templates"}


def test_pod_security(helm: Helm) -> None:
    spec = pod_spec(helm)
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(helm)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_probes_on_the_metrics_port(helm: Helm) -> None:
    c = container(helm)
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    tuned = container(helm, {"readinessProbe": {"periodSeconds": 1}})
    assert tuned["readinessProbe"]["periodSeconds"] == 1


def test_resources(helm: Helm) -> None:
    assert container(helm)["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }


@pytest.mark.parametrize(
    "values_file", [None, *CI_VALUES], ids=["defaults", *(p.stem for p in CI_VALUES)]
)
def test_grace_period_exceeds_drain_and_graceful_stop(helm: Helm, values_file: Path | None) -> None:
    docs = helm.template(values_files=[values_file] if values_file else [])
    spec = webhook_object(docs, "Deployment")["spec"]["template"]["spec"]
    args = flags(spec["containers"][0])
    stop = int(args["--shutdown-delay"]) + int(args["--graceful-timeout"])
    assert spec["terminationGracePeriodSeconds"] > stop


def test_grace_period_default_and_override(helm: Helm) -> None:
    assert pod_spec(helm)["terminationGracePeriodSeconds"] == 5 + 10 + 5
    config = {"shutdownDelaySeconds": 10, "gracefulTimeoutSeconds": 20}
    assert pod_spec(helm, {"config": config})["terminationGracePeriodSeconds"] == 35
    assert (
        pod_spec(helm, {"terminationGracePeriodSeconds": 16})["terminationGracePeriodSeconds"] == 16
    )


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ({}, f"ghcr.io/sidecar-injector/sidecar-injector:{APP_VERSION}"),
        ({"tag": "1.2.3"}, "ghcr.io/sidecar-injector/sidecar-injector:1.2.3"),
        (
            {
                "repository": "registry.example.com/si",
                "tag": "1.2.3",
                "digest": "sha256:" + "a" * 64,
            },
            "registry.example.com/si@sha256:" + "a" * 64,
        ),
    ],
    ids=["appVersion", "tag", "digest"],
)
def test_image_by_tag_or_digest(helm: Helm, image: dict[str, str], reference: str) -> None:
    c = container(helm, {"image": image} if image else None)
    assert c["image"] == reference
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_no_checksum_annotation(helm: Helm) -> None:
    """Template edits are hot-reloaded by the service, never rolled out."""
    annotations = deployment(helm)["spec"]["template"]["metadata"]["annotations"]
    assert not [k for k in annotations if "checksum" in k]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }
    off = deployment(helm, {"metrics": {"podAnnotations": False}})
    assert "annotations" not in off["spec"]["template"]["metadata"]


def test_replicas_rollout_and_spread(helm: Helm) -> None:
    doc = deployment(helm)
    assert doc["spec"]["replicas"] == 2
    assert doc["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    selector = doc["spec"]["selector"]["matchLabels"]
    assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    spread = doc["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    for constraint in spread:
        assert constraint["labelSelector"] == {"matchLabels": selector}
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_user_spread_constraint_keeps_its_selector(helm: Helm) -> None:
    own = {
        "maxSkew": 2,
        "topologyKey": "example.com/rack",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "x"}},
    }
    [constraint] = pod_spec(helm, {"topologySpreadConstraints": [own]})["topologySpreadConstraints"]
    assert constraint == own | {"matchLabelKeys": ["pod-template-hash"]}


def test_long_release_names_fit_in_63_characters(helm: Helm) -> None:
    release = "r" * 53  # helm's longest release name
    for doc in helm.template(release=release):
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
        assert not doc["metadata"]["name"].endswith("-")
