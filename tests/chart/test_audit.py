"""The audit's objects: rendered by default, gone with audit.enabled=false, valid Kubernetes;
its args are the webhook's settings (parsed back by the CLI's own parser, so a flag the audit
does not take fails), its RBAC exactly list/watch on pods and namespaces, its Pod restricted
and mounting the whole templates ConfigMap."""

from __future__ import annotations

import argparse
from typing import Any

import kubernetes_validate
import pytest

from injector.cli import build_parser

from .helm import (
    AUDIT_KINDS,
    NAMESPACE,
    RELEASE,
    Helm,
    Manifest,
    component,
    flags,
    only,
    webhook_container,
    webhook_object,
)
from .test_validate import K8S_VERSIONS

SETTINGS_FLAGS = (
    "--annotation-prefix",
    "--default-templates",
    "--exclude-namespaces",
    "--native-sidecars",
)
SETTINGS: dict[str, Any] = {
    "config": {
        "annotationPrefix": "injector.example.com",
        "defaultTemplates": ["log-shipper", "trace-agent"],
        "profiles": {"mesh": ["envoy-proxy", "trace-agent"], "logs": ["log-shipper"]},
        "nativeSidecars": False,
        "excludeNamespaces": ["monitoring", "kube-public"],
    }
}
"""Every value the webhook's settings flags come from, none at its default."""
SCHEDULING: dict[str, Any] = {
    "audit": {
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "podLabels": {"team": "platform"},
        "podAnnotations": {"example.com/owner": "platform"},
        "serviceAccount": {"annotations": {"example.com/role": "audit"}},
    },
    "networkPolicy": {"enabled": True},
    "metrics": {"serviceMonitor": {"enabled": True}},
}


def audit_docs(docs: list[Manifest]) -> list[Manifest]:
    return [d for d in docs if component(d) == "audit"]


def audit(docs: list[Manifest], kind: str) -> Manifest:
    return only(audit_docs(docs), kind)


def pod_spec(docs: list[Manifest]) -> Manifest:
    spec: Manifest = audit(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(docs: list[Manifest]) -> Manifest:
    containers: list[Manifest] = pod_spec(docs)["containers"]
    [found] = containers
    return found


def parsed(docs: list[Manifest]) -> argparse.Namespace:
    """The audit container's args as `sidecar-injector` parses them (SystemExit on a flag it
    does not take)."""
    return build_parser().parse_args(container(docs)["args"])


def test_rendered_by_default(default_docs: list[Manifest]) -> None:
    assert sorted(d["kind"] for d in audit_docs(default_docs)) == AUDIT_KINDS
    deployment = audit(default_docs, "Deployment")
    assert deployment["metadata"]["name"] == f"{RELEASE}-audit"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "audit"
    assert not [d for d in audit_docs(default_docs) if d["kind"] == "PodDisruptionBudget"]


def test_gone_when_disabled(helm: Helm) -> None:
    docs = helm.template({**SCHEDULING, "audit": {**SCHEDULING["audit"], "enabled": False}})
    assert audit_docs(docs) == []
    assert not [d for d in docs if "audit" in d["metadata"]["name"]]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_valid_kubernetes_objects(helm: Helm, version: str) -> None:
    for doc in audit_docs(helm.template(SCHEDULING)):
        if doc["kind"] == "ServiceMonitor":
            continue  # a CRD: test_service_monitor checks it
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} (Kubernetes {version}): {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("values", [{}, SETTINGS], ids=["defaults", "settings"])
def test_args_are_the_webhooks_settings(helm: Helm, values: dict[str, Any]) -> None:
    """The audit's settings flags, parsed, equal the webhook's settings flags parsed by the
    same parser; only --exclude-namespaces differs, by the release namespace."""
    docs = helm.template(values)
    assert container(docs)["args"][0] == "audit"
    webhook = flags(webhook_container(docs))
    given = [f"{name}={webhook[name]}" for name in SETTINGS_FLAGS]
    given += [f"--profile={p}" for p in webhook.get("--profile", "").split(";") if p]
    expected = build_parser().parse_args(["audit", *given])
    args = parsed(docs)
    for name in ("annotation_prefix", "default_templates", "native_sidecars"):
        assert getattr(args, name) == getattr(expected, name), name
    assert sorted(args.profile) == sorted(expected.profile)
    # The webhook configuration never sends the release namespace's pods: never injected,
    # they would all count as missed.
    assert args.exclude_namespaces == expected.exclude_namespaces | {NAMESPACE}
    assert "kube-system" in args.exclude_namespaces


def test_settings_values_reach_the_args(helm: Helm) -> None:
    args = parsed(helm.template(SETTINGS))
    assert args.annotation_prefix == "injector.example.com"
    assert tuple(args.default_templates) == ("log-shipper", "trace-agent")
    assert sorted(args.profile) == ["logs=log-shipper", "mesh=envoy-proxy,trace-agent"]
    assert args.native_sidecars is False
    assert args.exclude_namespaces == {"kube-system", "monitoring", "kube-public", NAMESPACE}


@pytest.mark.parametrize(("kube", "native"), [("1.28.0", False), ("1.29.0", True)])
def test_native_sidecars_auto_follows_the_cluster_as_for_the_webhook(
    helm: Helm, kube: str, native: bool
) -> None:
    docs = helm.template(kube_version=kube)
    assert parsed(docs).native_sidecars is native
    assert flags(webhook_container(docs))["--native-sidecars"] == str(native).lower()


def test_process_flags(helm: Helm) -> None:
    docs = helm.template({"audit": {"metricsPort": 9102, "logLevel": "debug"}})
    args = parsed(docs)
    mount = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}["templates"]
    assert args.templates_dir == mount
    assert (args.metrics_port, args.log_level, args.log_format) == (9102, "debug", "json")
    assert args.host == "0.0.0.0"
    assert args.kubeconfig is None and args.context is None, "in-cluster credentials"
    [port] = container(docs)["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", 9102)
    [service_port] = audit(docs, "Service")["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (9102, "metrics")
    assert audit(docs, "Service")["spec"]["type"] == "ClusterIP"
    assert container(docs)["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container(docs)["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_cluster_role_is_list_watch_on_pods_and_namespaces(default_docs: list[Manifest]) -> None:
    role = audit(default_docs, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]}
    ]
    binding = audit(default_docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = audit(default_docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert account["automountServiceAccountToken"] is True
    spec = pod_spec(default_docs)
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert spec["automountServiceAccountToken"] is True


def test_service_account_not_created(helm: Helm) -> None:
    docs = helm.template({"audit": {"serviceAccount": {"create": False, "name": "shared"}}})
    assert not [d for d in audit_docs(docs) if d["kind"] == "ServiceAccount"]
    assert pod_spec(docs)["serviceAccountName"] == "shared"
    [subject] = audit(docs, "ClusterRoleBinding")["subjects"]
    assert subject["name"] == "shared"


def test_restricted_pod_security(default_docs: list[Manifest]) -> None:
    pod = pod_spec(default_docs)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(default_docs)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_templates_volume_is_the_whole_configmap(helm: Helm, default_docs: list[Manifest]) -> None:
    for docs in (default_docs, helm.template({"templatesConfigMap": {"existing": "mine"}})):
        volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
        configmap = volumes["templates"]["configMap"]
        assert set(configmap) == {"name"}, "every key, no items list"
        webhook_volumes = only([d for d in docs if component(d) == "webhook"], "Deployment")[
            "spec"
        ]["template"]["spec"]["volumes"]
        [webhook_templates] = [v for v in webhook_volumes if v["name"] == "templates"]
        assert configmap == webhook_templates["configMap"]
        for mount in container(docs)["volumeMounts"]:
            assert "subPath" not in mount and "subPathExpr" not in mount
            assert mount["mountPath"] == "/tmp" or mount.get("readOnly") is True


def test_same_image_as_the_webhook(helm: Helm) -> None:
    docs = helm.template({"image": {"digest": "sha256:" + "0" * 64}})
    assert container(docs)["image"] == webhook_container(docs)["image"]
    assert "command" not in container(docs), "the image's ENTRYPOINT runs sidecar-injector"


def test_scheduling_and_metadata_values(helm: Helm, default_docs: list[Manifest]) -> None:
    assert pod_spec(default_docs)["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert container(default_docs)["resources"]["limits"]["memory"]
    docs = helm.template(SCHEDULING)
    spec = pod_spec(docs)
    wanted = SCHEDULING["audit"]
    # Helm merges a given map into the default one.
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", **wanted["nodeSelector"]}
    assert spec["tolerations"] == wanted["tolerations"]
    assert spec["affinity"] == wanted["affinity"]
    assert spec["priorityClassName"] == wanted["priorityClassName"]
    template = audit(docs, "Deployment")["spec"]["template"]["metadata"]
    assert template["labels"]["team"] == "platform"
    assert template["labels"]["app.kubernetes.io/component"] == "audit"
    assert template["annotations"]["example.com/owner"] == "platform"
    assert audit(docs, "ServiceAccount")["metadata"]["annotations"] == {"example.com/role": "audit"}


def test_service_monitor(helm: Helm) -> None:
    docs = helm.template(SCHEDULING)
    monitor = audit(docs, "ServiceMonitor")
    service = audit(docs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    webhook_service = only([d for d in docs if component(d) == "webhook"], "Service")
    assert not selector.items() <= webhook_service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    assert endpoint["relabelings"] == [
        {"action": "replace", "targetLabel": "job", "replacement": service["metadata"]["name"]}
    ]
    off = helm.template({"metrics": {"serviceMonitor": {"enabled": False}}})
    assert not [d for d in audit_docs(off) if d["kind"] == "ServiceMonitor"]


def test_network_policy_lets_the_audit_reach_the_api_server(helm: Helm) -> None:
    policy = audit(helm.template(SCHEDULING), "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "audit"
    assert policy["policyTypes"] == ["Ingress"], "egress stays open for the kube-apiserver"
    assert policy["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]


def test_the_last_good_configmap_is_kept_by_the_audit_and_mounted_by_the_webhook(
    default_docs: list[Manifest],
) -> None:
    configmap = audit(default_docs, "ConfigMap")
    name = configmap["metadata"]["name"]
    assert name == f"{RELEASE}-last-good"
    assert "data" not in configmap, "its data is the audit's: an upgrade must not reset it"
    role = audit(default_docs, "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name],
         "verbs": ["get", "patch"]}
    ]  # fmt: skip
    binding = audit(default_docs, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == audit(default_docs, "ClusterRoleBinding")["subjects"]
    args = parsed(default_docs)
    assert args.last_good_configmap == (NAMESPACE, name)
    webhook = webhook_container(default_docs)
    for spec, mounts, directory in (
        (pod_spec(default_docs), container(default_docs)["volumeMounts"], args.last_good_dir),
        (
            webhook_object(default_docs, "Deployment")["spec"]["template"]["spec"],
            webhook["volumeMounts"],
            flags(webhook)["--last-good-dir"],
        ),
    ):
        volume = {v["name"]: v for v in spec["volumes"]}["last-good"]
        assert volume["configMap"] == {"name": name, "optional": True}
        mount = {m["name"]: m for m in mounts}["last-good"]
        assert (mount["mountPath"], mount["readOnly"]) == (str(directory), True)


def test_no_last_good_configmap_when_not_kept(helm: Helm) -> None:
    docs = helm.template({"audit": {"keepLastGood": False}})
    assert sorted(d["kind"] for d in audit_docs(docs)) == [
        k for k in AUDIT_KINDS if k not in ("ConfigMap", "Role", "RoleBinding")
    ]
    assert parsed(docs).last_good_configmap is None and parsed(docs).last_good_dir is None
    assert "--last-good-dir" not in flags(webhook_container(docs))


def test_the_webhook_selectors_reach_the_audit(helm: Helm) -> None:
    namespaces = {
        "matchLabels": {"team": "shop"},
        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}],
    }
    pods = {"matchExpressions": [{"key": "sidecars", "operator": "DoesNotExist"}]}
    args = parsed(
        helm.template({"webhook": {"namespaceSelector": namespaces, "objectSelector": pods}})
    )
    assert (args.namespace_selector, args.object_selector) == (namespaces, pods)
    defaults = parsed(helm.template())
    assert (defaults.namespace_selector, defaults.object_selector) == (None, None)
