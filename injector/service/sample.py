"""A realistic AdmissionReview (about 6 KB) as the kube-apiserver sends it: the dev-mode curl
command posts it, the README shows it, and the latency measurement uses it."""

from __future__ import annotations

from typing import Any

UID = "705ab4f5-6393-11e8-b7cc-42010a800002"
TOKEN_VOLUME = "kube-api-access-9x7kq"
REPLICASET_CONTROLLER = {
    "username": "system:serviceaccount:kube-system:replicaset-controller",
    "uid": "8b1e9c3a-5d2f-4e6a-9f0b-7c4d2e1a3b5c",
    "groups": [
        "system:serviceaccounts",
        "system:serviceaccounts:kube-system",
        "system:authenticated",
    ],
}
"""Who creates a Deployment's pods: the user of most admission reviews."""


def _env(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _app_container() -> dict[str, Any]:
    return {
        "name": "api",
        "image": "registry.example.com/shop/api:2.14.3",
        "imagePullPolicy": "IfNotPresent",
        "args": ["serve", "--config=/etc/shop/config.yaml", "--listen=:8080"],
        "ports": [
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        ],
        "env": [
            _env("SHOP_ENV", "production"),
            _env("SHOP_REGION", "eu-west-1"),
            _env("SHOP_LOG_FORMAT", "json"),
            _env("SHOP_DB_HOST", "postgres.shop.svc.cluster.local"),
            _env("SHOP_DB_PORT", "5432"),
            _env("SHOP_CACHE_URL", "redis://redis.shop.svc.cluster.local:6379/0"),
            _env("SHOP_FEATURE_FLAGS", "checkout-v2,fast-search,new-pricing"),
            _env("SHOP_HTTP_READ_TIMEOUT", "15s"),
            _env("SHOP_HTTP_WRITE_TIMEOUT", "30s"),
            _env("SHOP_MAX_CONNECTIONS", "512"),
            _env("SHOP_PAYMENTS_URL", "https://payments.shop.svc.cluster.local:8443/v2"),
            _env("SHOP_SEARCH_URL", "http://search.shop.svc.cluster.local:9200"),
            _env("SHOP_STATSD_ADDR", "127.0.0.1:9125"),
            _env("GOMAXPROCS", "2"),
            _env("GOMEMLIMIT", "450MiB"),
            {
                "name": "SHOP_DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "password"}},
            },
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/shop", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {
                "name": TOKEN_VOLUME,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            },
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _exporter_container() -> dict[str, Any]:
    return {
        "name": "statsd-exporter",
        "image": "prom/statsd-exporter:v0.27.1",
        "imagePullPolicy": "IfNotPresent",
        "args": ["--statsd.listen-udp=:9125", "--web.listen-address=:9102"],
        "ports": [
            {"name": "statsd", "containerPort": 9125, "protocol": "UDP"},
            {"name": "exporter", "containerPort": 9102, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [
            {
                "name": TOKEN_VOLUME,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            }
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def _volumes() -> list[dict[str, Any]]:
    return [
        {"name": "config", "configMap": {"name": "shop-api-config", "defaultMode": 420}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        token_volume(TOKEN_VOLUME),
    ]


def token_volume(name: str) -> dict[str, Any]:
    """The projected service-account token volume the apiserver adds to every pod."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def pod(inject: str = "log-shipper") -> dict[str, Any]:
    """A Pod as a ReplicaSet creates it, asking for `inject` (omitted when empty)."""
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "kubectl.kubernetes.io/restartedAt": "2024-10-01T09:30:00Z",
    }
    if inject:
        annotations["sidecar-injector.io/inject"] = inject
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "shop-api-7d9f8b6c5d-",
            "namespace": "shop",
            "labels": {
                "app.kubernetes.io/name": "shop-api",
                "app.kubernetes.io/instance": "shop",
                "app.kubernetes.io/version": "2.14.3",
                "app.kubernetes.io/component": "api",
                "app.kubernetes.io/part-of": "shop",
                "pod-template-hash": "7d9f8b6c5d",
            },
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "shop-api-7d9f8b6c5d",
                    "uid": "2f0e5b1c-8f2a-4d8e-9b8a-3c6f1e2d4a5b",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": "shop-api",
            "serviceAccount": "shop-api",
            "containers": [_app_container(), _exporter_container()],
            "volumes": _volumes(),
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "enableServiceLinks": False,
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority",
            "securityContext": {"fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "shop-api"}},
                }
            ],
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {
                                    "matchLabels": {"app.kubernetes.io/name": "shop-api"}
                                },
                            },
                        }
                    ]
                }
            },
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        },
    }


def review(inject: str = "log-shipper", uid: str = UID) -> dict[str, Any]:
    """An AdmissionReview v1 request for the creation of `pod(inject)`."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": REPLICASET_CONTROLLER,
            "object": pod(inject),
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
