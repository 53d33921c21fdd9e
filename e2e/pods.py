"""The Pods the scenarios create, and what the kube-apiserver does to a Pod around webhooks.

Scenario Pods are written as a user writes them (no namespace, no defaults). In cluster mode
kubectl creates them as they are. In local mode `as_admitted` first does what the apiserver does
before it calls mutating webhooks: defaulting, the ServiceAccount admission plugin's projected
token volume, Priority, DefaultTolerationSeconds; `as_stored` what it does with the webhook's
patched Pod. Both follow Kubernetes 1.28, and cluster mode checks that they store what a real
apiserver stores. `replicaset_pod` builds a Pod from a Deployment the way the ReplicaSet
controller does, for local mode and for clusters without controllers.
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
"""The label webhook.namespaceSelector selects (e2e/values.yaml); every test namespace has it."""
PROFILE = "e2e-observability"
"""The profile of e2e/values.yaml."""
PROFILE_NAMESPACES = {
    "e2e-profile": PROFILE,
    "e2e-enabled": "enabled",
    "e2e-disabled": "disabled",
    "e2e-typo": "e2e-observabilty",
}
"""Test namespaces labeled `<prefix>/inject=<value>`: a profile, the default set, opted out,
and a typo."""
OWNERS = "e2e-owners"
"""A namespace of its own for `outdated`'s workloads, so earlier scenarios' pods stay out."""
LABELS = "e2e-labels"
"""A namespace without the label, whose label the namespace-label scenarios set and remove."""
NAMESPACES = {APPS: None, EXCLUDED: None, OWNERS: None, LABELS: None, **PROFILE_NAMESPACES}
"""Every test namespace and its `<prefix>/inject` label (None: no label)."""

PREFIX = "sidecar-injector.io"
INJECT = f"{PREFIX}/inject"
STATUS = f"{PREFIX}/status"

TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME = "kube-api-access-"
"""The prefix of the ServiceAccount plugin's volume names."""
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


def deployment(name: str, inject: str | None, replicas: int = 2, params: Params = None) -> Obj:
    """A Deployment whose pod template opts in (`inject=None`: leaves it to the namespace)."""
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


def stateful_set(name: str, inject: str | None, replicas: int = 1, params: Params = None) -> Obj:
    """A StatefulSet of `deployment`'s shape (its Service named like it)."""
    found = deployment(name, inject, replicas, params)
    found["kind"] = "StatefulSet"
    found["spec"]["serviceName"] = name
    return found


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
    """`pod` as mutating webhooks receive it from the kube-apiserver: decoded with the v1
    defaults, then changed by the in-tree admission plugins (the ServiceAccount plugin's token
    volume mounted in every container, priority, default tolerations)."""
    pod = copy.deepcopy(pod)
    pod["metadata"]["namespace"] = namespace
    default(pod)
    admit_in_tree(pod)
    return pod


def as_stored(submitted: Obj, patched: Obj) -> Obj:
    """What the kube-apiserver stores after a webhook's patch turned `submitted` into `patched`.

    It defaults the patched object as it defaults a decoded one (the injected containers get
    imagePullPolicy, a fieldRef its apiVersion, ...). A webhook that changed the object makes it
    run the in-tree mutating plugins once more, whatever the webhook's reinvocationPolicy: the
    ServiceAccount plugin then mounts the token into the injected containers too.
    """
    changed = patched != submitted
    pod = copy.deepcopy(patched)
    default(pod)
    if changed:
        admit_in_tree(pod)
    return pod


def default(pod: Obj) -> None:
    """The kube-apiserver's v1 Pod defaults (SetObjectDefaults_Pod of Kubernetes 1.28), and the
    empty maps and lists its JSON encoding leaves out (`omitempty`)."""
    spec = pod["spec"]
    for key, value in _POD_SPEC_DEFAULTS.items():
        spec.setdefault(key, copy.deepcopy(value))
    for volume in spec.get("volumes", []):
        _default_volume(volume)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key, []):
            _default_container(container, host_network=bool(spec.get("hostNetwork")))
    _drop_empty(pod)


def admit_in_tree(pod: Obj) -> None:
    """The in-tree mutating admission plugins that change a Pod on creation (no LimitRanges,
    no PriorityClasses, a ServiceAccount without image pull secrets)."""
    spec = pod["spec"]
    # ServiceAccount
    spec.setdefault("serviceAccountName", "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    if spec.get("automountServiceAccountToken", True):
        _mount_token(spec)
    # Priority: no class asked for and no global default class.
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    # DefaultTolerationSeconds
    tolerations = spec.get("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(
            t.get("key", "") in (key, "") and t.get("effect", "") in ("NoExecute", "")
            for t in tolerations
        ):
            spec.setdefault("tolerations", []).append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )


def random_suffix(length: int = 5) -> str:
    """A random suffix as Kubernetes generates for names."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


_POD_SPEC_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {},
    "schedulerName": "default-scheduler",
    "enableServiceLinks": True,
}
_PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
_FILE_MODE = 0o644
"""defaultMode of secret, configMap, downwardAPI and projected volumes (420)."""
_OMITTED_WHEN_EMPTY_MAPS = frozenset(
    {"labels", "annotations", "nodeSelector", "limits", "requests", "overhead"}
)
"""Map-typed fields: `omitempty` drops them when empty (structs such as `emptyDir: {}` stay)."""
_REQUIRED_LISTS = frozenset({"containers", "sources"})
"""The only list fields of a Pod encoded even when empty; every other one is `omitempty`."""


def _default_volume(volume: Obj) -> None:
    sources = {key for key in volume if key != "name"}
    if not sources:
        volume["emptyDir"] = {}
    if "hostPath" in volume:
        volume["hostPath"].setdefault("type", "")
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        if key in volume:
            volume[key].setdefault("defaultMode", _FILE_MODE)
    for item in volume.get("downwardAPI", {}).get("items", []):
        _default_field_ref(item)
    for source in volume.get("projected", {}).get("sources", []):
        for item in source.get("downwardAPI", {}).get("items", []):
            _default_field_ref(item)
        if "serviceAccountToken" in source:
            source["serviceAccountToken"].setdefault("expirationSeconds", 3600)


def _default_container(container: Obj, host_network: bool) -> None:
    image: str = container["image"]
    name = image.split("@", 1)[0]
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    latest = tag == "latest" or (not tag and "@" not in image)
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    # A limit without a request: the request is the limit (Pods only, not templates).
    for resource, limit in resources.get("limits", {}).items():
        resources.setdefault("requests", {}).setdefault(resource, limit)
    for port in container.get("ports", []):
        port.setdefault("protocol", "TCP")
        if host_network:
            port.setdefault("hostPort", port["containerPort"])
    for variable in container.get("env", []):
        _default_field_ref(variable.get("valueFrom", {}))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if key in container:
            probe = container[key]
            for field, value in _PROBE_DEFAULTS.items():
                probe.setdefault(field, value)
            _default_handler(probe)
    for hook in container.get("lifecycle", {}).values():
        _default_handler(hook)


def _default_handler(handler: Obj) -> None:
    if "httpGet" in handler:
        handler["httpGet"].setdefault("path", "/")
        handler["httpGet"].setdefault("scheme", "HTTP")
    if "grpc" in handler:
        handler["grpc"].setdefault("service", "")


def _default_field_ref(source: Obj) -> None:
    if "fieldRef" in source:
        source["fieldRef"].setdefault("apiVersion", "v1")


def _drop_empty(node: Any) -> None:
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            _drop_empty(value)
            empty_map = value == {} and key in _OMITTED_WHEN_EMPTY_MAPS
            if empty_map or (value == [] and key not in _REQUIRED_LISTS):
                del node[key]
    elif isinstance(node, list):
        for item in node:
            _drop_empty(item)


def _mount_token(spec: Obj) -> None:
    """Every container without a mount at the token path gets one, of the pod's existing
    `kube-api-access-` volume if there is one, else of a new one."""
    existing = [v["name"] for v in spec.get("volumes", []) if v["name"].startswith(TOKEN_VOLUME)]
    volume = existing[0] if existing else f"{TOKEN_VOLUME}{random_suffix()}"
    needed = False
    for key in ("initContainers", "containers"):
        for container in spec.get(key, []):
            if TOKEN_PATH not in {m["mountPath"] for m in container.get("volumeMounts", [])}:
                container.setdefault("volumeMounts", []).append(
                    {"name": volume, "mountPath": TOKEN_PATH, "readOnly": True}
                )
                needed = True
    if needed and not existing:
        spec.setdefault("volumes", []).append(token_volume(volume))


def _annotations(inject: str | None, params: Params) -> dict[str, str]:
    out = {f"{PREFIX}/{key}": value for key, value in (params or {}).items()}
    if inject is not None:
        out[INJECT] = inject
    return out


def _uid(digest: bytes) -> str:
    text = digest[:16].hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
