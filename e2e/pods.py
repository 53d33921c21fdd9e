"""The Pods the scenarios create, and what the kube-apiserver does to a Pod before webhooks.

Scenario Pods are written as a user writes them (no namespace, no defaults). In cluster mode
kubectl creates them as they are. In local mode `as_admitted` first does what the apiserver does
before it calls mutating webhooks: defaulting, the ServiceAccount admission plugin's projected
token volume, DefaultTolerationSeconds. `replicaset_pod` builds a Pod from a Deployment the way
the ReplicaSet controller does, for local mode and for clusters without controllers.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from injector.service.sample import token_volume
from tests.k8s import pod as minimal_pod

Obj = dict[str, Any]
Params = Mapping[str, str] | None
"""Parameter overrides: `<template>.<param>` -> value, set as `<prefix>/<template>.<param>`."""

APPS = "e2e-apps"
"""The opted-in test namespace."""
EXCLUDED = "e2e-excluded"
"""A test namespace listed in config.excludeNamespaces (e2e/values.yaml)."""
NAMESPACE_LABELS = {"e2e.sidecar-injector.io/enabled": "true"}
"""The label webhook.namespaceSelector selects (e2e/values.yaml); both test namespaces carry it."""

PREFIX = "sidecar-injector.io"
INJECT = f"{PREFIX}/inject"
STATUS = f"{PREFIX}/status"

TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""The characters Kubernetes uses for generated name suffixes."""


def bare(name: str, inject: str | None = "log-shipper", params: Params = None) -> Obj:
    """One container, nothing else; `inject=None` leaves the opt-in annotation out."""
    pod = minimal_pod()
    pod["metadata"] = {"name": name, "annotations": _annotations(inject, params)}
    return pod


def rich(name: str, inject: str, params: Params = None) -> Obj:
    """Two app containers and an init container with env, mounts, ports, probes, resources and
    security settings; a label and an env var that templates also set (the pod's must win)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "shop",
                "app.kubernetes.io/component": "api",
                "sidecar-injector.io/log-shipper": "custom",
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "team.example.com/owner": "payments",
                **_annotations(inject, params),
            },
        },
        "spec": {
            "serviceAccountName": "default",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [
                {
                    "name": "migrate",
                    "image": "registry.example.com/shop/migrate:2.14.3",
                    "args": ["--to=latest"],
                    "env": [{"name": "DB_HOST", "value": "postgres"}],
                }
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.com/shop/api:2.14.3",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": [
                        {"name": "OTEL_SERVICE_NAME", "value": "shop-api"},
                        {
                            "name": "DB_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                        },
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"memory": "512Mi"},
                    },
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/shop"}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                },
                {
                    "name": "worker",
                    "image": "registry.example.com/shop/worker:2.14.3",
                    "command": ["/worker"],
                    "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                },
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "shop-config", "optional": True}},
                {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
            ],
        },
    }


def deployment(name: str, inject: str, replicas: int = 2, params: Params = None) -> Obj:
    """A Deployment whose pod template opts in."""
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": _annotations(inject, params)},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    }


def replicaset_pod(deployment: Obj) -> Obj:
    """A Pod as the ReplicaSet controller creates it for `deployment`: generateName from the
    ReplicaSet's name, the pod-template-hash label, and the ReplicaSet as controller owner."""
    template = copy.deepcopy(deployment["spec"]["template"])
    digest = hashlib.sha256(repr(template).encode()).digest()
    pod_hash = "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in digest[:10])
    replicaset = f"{deployment['metadata']['name']}-{pod_hash}"
    metadata = template["metadata"]
    metadata["labels"] = {**metadata.get("labels", {}), "pod-template-hash": pod_hash}
    metadata["generateName"] = f"{replicaset}-"
    metadata["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": replicaset,
            "uid": _uid(digest),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def recreate(stored: Obj, name: str) -> Obj:
    """A new Pod named `name` from a stored one (`kubectl get -o yaml`, edited, created)."""
    pod = copy.deepcopy(stored)
    pod.pop("status", None)
    metadata = pod["metadata"]
    for key in _SERVER_SET:
        metadata.pop(key, None)
    metadata["name"] = name
    return pod


_SERVER_SET = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "generation",
    "generateName",
    "ownerReferences",
)


def as_admitted(pod: Obj, namespace: str) -> Obj:
    """`pod` as mutating webhooks receive it from the kube-apiserver: defaulted, with the
    ServiceAccount plugin's token volume mounted in every container, default tolerations."""
    pod = copy.deepcopy(pod)
    pod["metadata"]["namespace"] = namespace
    spec = pod["spec"]
    spec.setdefault("serviceAccountName", "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    for key, value in _POD_DEFAULTS.items():
        spec.setdefault(key, copy.deepcopy(value))
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    for container in containers:
        _default_container(container)
    tolerated = {t.get("key") for t in spec.get("tolerations", [])}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if key not in tolerated:
            spec.setdefault("tolerations", []).append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    if spec.get("automountServiceAccountToken", True) and not _mounts_token(containers):
        volume = f"kube-api-access-{random_suffix()}"
        spec.setdefault("volumes", []).append(token_volume(volume))
        for container in containers:
            container.setdefault("volumeMounts", []).append(
                {"name": volume, "mountPath": TOKEN_PATH, "readOnly": True}
            )
    return pod


def random_suffix(length: int = 5) -> str:
    """A random suffix as Kubernetes generates for names."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


_POD_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {},
    "schedulerName": "default-scheduler",
    "enableServiceLinks": True,
    "priority": 0,
    "preemptionPolicy": "PreemptLowerPriority",
}


def _default_container(container: Obj) -> None:
    image: str = container["image"]
    latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports", []):
        port.setdefault("protocol", "TCP")


def _mounts_token(containers: list[Obj]) -> bool:
    return any(m["mountPath"] == TOKEN_PATH for c in containers for m in c.get("volumeMounts", []))


def _annotations(inject: str | None, params: Params) -> dict[str, str]:
    out = {f"{PREFIX}/{key}": value for key, value in (params or {}).items()}
    if inject is not None:
        out[INJECT] = inject
    return out


def _uid(digest: bytes) -> str:
    text = digest[:16].hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
