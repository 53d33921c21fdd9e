"""The kube-apiserver's half of a webhook call, for local mode.

Like the apiserver it trusts only the webhook configuration's caBundle and verifies the
server's certificate for `<service>.<namespace>.svc`, keeps connections alive, sends
AdmissionReview v1 with `?timeout=` and a client timeout of the configuration's
timeoutSeconds, and applies the returned JSON Patch to the Pod, then defaults it and runs the
in-tree admission plugins again (as the apiserver does after a webhook's change) before
validating it.
"""

from __future__ import annotations

import base64
import copy
import socket
import ssl
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import jsonpatch
import orjson
from cryptography import x509

from e2e.chart import Release
from e2e.pods import Obj, as_admitted, as_stored, replicaset_pod
from e2e.target import Admission, Applied
from injector.service.sample import REPLICASET_CONTROLLER
from tests.k8s import assert_valid
from tests.service import process

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
PODS = {"group": "", "version": "v1", "resource": "pods"}
CONFIGMAP_KIND = {"group": "", "version": "v1", "kind": "ConfigMap"}
CONFIGMAPS = {"group": "", "version": "v1", "resource": "configmaps"}
NAMESPACE_KIND = {"group": "", "version": "v1", "kind": "Namespace"}
NAMESPACES = {"group": "", "version": "v1", "resource": "namespaces"}
NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the apiserver sets on every namespace (its name), before admission."""
ADMIN = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}


def client_context(ca_bundle: bytes) -> ssl.SSLContext:
    """Trust the caBundle and nothing else; check the host name (the apiserver's Go client)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca_bundle.decode())
    return context


def review(
    pod: Obj, *, dry_run: bool = False, user: dict[str, Any] = ADMIN, uid: str | None = None
) -> dict[str, Any]:
    """The AdmissionReview v1 the apiserver sends for the creation of `pod` (as admitted)."""
    metadata = pod["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": POD_KIND,
            "resource": PODS,
            "requestKind": POD_KIND,
            "requestResource": PODS,
            # Empty with generateName: the name is generated after admission.
            "name": metadata.get("name", ""),
            "namespace": metadata["namespace"],
            "operation": "CREATE",
            "userInfo": user,
            "object": pod,
            "oldObject": None,
            "dryRun": dry_run,
            "options": {
                "apiVersion": "meta.k8s.io/v1",
                "kind": "CreateOptions",
                "fieldManager": "kubectl-create",
            },
        },
    }


def configmap_review(new: Obj, old: Obj | None, *, dry_run: bool) -> dict[str, Any]:
    """The AdmissionReview v1 the apiserver sends for an update (or creation) of a ConfigMap."""
    metadata = new["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": CONFIGMAP_KIND,
            "resource": CONFIGMAPS,
            "requestKind": CONFIGMAP_KIND,
            "requestResource": CONFIGMAPS,
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "operation": "UPDATE" if old is not None else "CREATE",
            "userInfo": ADMIN,
            "object": new,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "PatchOptions"},
        },
    }


def namespace_review(new: Obj, old: Obj | None, *, dry_run: bool) -> dict[str, Any]:
    """The AdmissionReview v1 the apiserver sends for the creation (`old` None) or an update
    of a Namespace: cluster-scoped, so no namespace; oldObject null on CREATE."""
    operation = "UPDATE" if old is not None else "CREATE"
    options = "UpdateOptions" if old is not None else "CreateOptions"
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": NAMESPACE_KIND,
            "resource": NAMESPACES,
            "requestKind": NAMESPACE_KIND,
            "requestResource": NAMESPACES,
            "name": new["metadata"]["name"],
            "operation": operation,
            "userInfo": ADMIN,
            "object": new,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options},
        },
    }


def as_created_namespace(namespace: Obj) -> Obj:
    """A Namespace as the apiserver admits it: its name label set, the kubernetes finalizer."""
    created = copy.deepcopy(namespace)
    metadata = created["metadata"]
    metadata["labels"] = {**(metadata.get("labels") or {}), NAME_LABEL: metadata["name"]}
    created.setdefault("spec", {"finalizers": ["kubernetes"]})
    created.setdefault("status", {"phase": "Active"})
    return created


class LocalApiserver:
    """Calls the webhook's endpoints as the apiserver would; one keep-alive client. It stores
    the templates ConfigMap (as `helm install` left it), which edits go through /validate for."""

    native_sidecars = True
    """Like Kubernetes 1.29+ (and 1.28 with the SidecarContainers feature gate)."""

    def __init__(self, port: int, release: Release, ca_bundle: bytes) -> None:
        self.url = f"https://127.0.0.1:{port}{release.path}"
        self.validate_url = f"https://127.0.0.1:{port}{release.validate_path}"
        self.host = release.service_host
        self.timeout = release.timeout_seconds
        self.client = httpx.Client(verify=client_context(ca_bundle), timeout=self.timeout)
        self.templates = copy.deepcopy(release.templates_configmap)
        self.namespaces: dict[str, Obj] = {}
        """Namespaces as stored: what an UPDATE's oldObject is. Unlike the apiserver, this
        client sends every namespace edit (the chart's matchConditions are not modeled)."""
        self.inject_key = f"{release.args['--annotation-prefix']}/inject"

    def close(self) -> None:
        self.client.close()

    def post(
        self, body: bytes, content_type: str = "application/json", url: str | None = None
    ) -> httpx.Response:
        """One POST to the webhook, verified for `host`, bounded by timeoutSeconds."""
        return self.client.post(
            url or self.url,
            params={"timeout": f"{self.timeout}s"},
            content=body,
            headers={"content-type": content_type, "accept": "application/json, */*"},
            extensions={"sni_hostname": self.host},
        )

    def call(self, document: dict[str, Any], url: str | None = None) -> dict[str, Any]:
        """Send an AdmissionReview; its checked `response`."""
        answer = self.post(orjson.dumps(document), url=url)
        assert answer.status_code == 200, f"{answer.status_code}: {answer.text}"
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert (body["apiVersion"], body["kind"]) == (API_VERSION, KIND)
        response: dict[str, Any] = body["response"]
        assert response["uid"] == document["request"]["uid"]
        assert ("patch" in response) == ("patchType" in response)
        return response

    def admit(
        self, pod: Obj, namespace: str, *, dry_run: bool = False, user: dict[str, Any] = ADMIN
    ) -> Admission:
        submitted = as_admitted(pod, namespace)
        response = self.call(review(submitted, dry_run=dry_run, user=user))
        warnings = tuple(response.get("warnings", ()))
        if not response["allowed"]:
            status = response["status"]
            assert status["code"] >= 400 and "patch" not in response
            return Admission(submitted, False, None, status["message"], warnings)
        if "patch" not in response:
            assert_valid(submitted)
            return Admission(submitted, True, submitted, warnings=warnings)
        assert response["patchType"] == "JSONPatch"
        ops: list[Obj] = orjson.loads(base64.b64decode(response["patch"]))
        assert {op["op"] for op in ops} == {"add"}, "the webhook only ever adds"
        stored = as_stored(submitted, jsonpatch.apply_patch(submitted, ops))
        assert_valid(stored)
        return Admission(submitted, True, stored, warnings=warnings, patch=ops)

    def create_deployment(self, deployment: Obj, namespace: str) -> list[Admission]:
        """What the ReplicaSet controller's Pod creations go through."""
        replicas: int = deployment["spec"]["replicas"]
        return [
            self.admit(replicaset_pod(deployment), namespace, user=REPLICASET_CONTROLLER)
            for _ in range(replicas)
        ]

    def update_templates(self, data: Mapping[str, str], *, dry_run: bool = False) -> Applied:
        new = {**copy.deepcopy(self.templates), "data": dict(data)}
        response = self.call(
            configmap_review(new, self.templates, dry_run=dry_run), self.validate_url
        )
        warnings = tuple(response.get("warnings", ()))
        if not response["allowed"]:
            return Applied(False, response["status"]["message"], warnings)
        if not dry_run:
            self.templates = new
        return Applied(True, warnings=warnings)

    def label_namespace(self, name: str, value: str | None) -> Applied:
        old = self.namespaces.get(name) or as_created_namespace(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        new = copy.deepcopy(old)
        labels = new["metadata"]["labels"]
        if value is None:
            labels.pop(self.inject_key, None)
        else:
            labels[self.inject_key] = value
        applied = self._judge_namespace(new, old, dry_run=False)
        if applied.allowed:
            self.namespaces[name] = new
        return applied

    def create_namespace(self, namespace: Obj, *, dry_run: bool = False) -> Applied:
        created = as_created_namespace(namespace)
        applied = self._judge_namespace(created, None, dry_run=dry_run)
        if applied.allowed and not dry_run:
            self.namespaces[created["metadata"]["name"]] = created
        return applied

    def _judge_namespace(self, new: Obj, old: Obj | None, *, dry_run: bool) -> Applied:
        response = self.call(namespace_review(new, old, dry_run=dry_run), self.validate_url)
        warnings = tuple(response.get("warnings", ()))
        if not response["allowed"]:
            status = response["status"]
            assert status["code"] == 400
            return Applied(False, status["message"], warnings)
        return Applied(True, warnings=warnings)


class Connection(process.Connection):
    """One keep-alive connection that never silently reconnects (the service tests' own), but
    verified for the webhook's `host` and the caBundle, as the apiserver verifies it."""

    def __init__(self, port: int, host: str, ca_bundle: bytes) -> None:
        super().__init__(port, client_context(ca_bundle))
        self.server_name = host

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.server_name)

    def peer_serial(self) -> int:
        """Serial number of the certificate this connection was served."""
        assert isinstance(self.sock, ssl.SSLSocket)
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number
