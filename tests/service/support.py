"""Test support: the in-process apps with a fresh registry, sample reviews, patch checks."""

from __future__ import annotations

import base64
import copy
import datetime
import os
import shutil
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import orjson
import trustme
from prometheus_client import CollectorRegistry

from injector.catalog import Catalog
from injector.policy import Settings
from injector.service.app import ops_app, webhook_app
from injector.service.config import OnError
from injector.service.metrics import Metrics
from injector.service.sample import review
from injector.service.state import State
from tests.k8s import assert_valid
from tests.service.process import SERVICE_NAME, local_args

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


@dataclass
class Harness:
    """The webhook and ops apps of one process, in memory, with their own registry."""

    state: State
    registry: CollectorRegistry
    webhook: httpx.AsyncClient
    ops: httpx.AsyncClient

    async def post(
        self,
        body: Mapping[str, Any] | bytes,
        content_type: str = "application/json",
        path: str = "/mutate",
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.webhook.post(
            path, content=content, headers={"content-type": content_type}
        )

    async def review(self, body: Mapping[str, Any], path: str = "/mutate") -> dict[str, Any]:
        """POST a review that must be answered; its `response`."""
        answer = await self.post(body, path=path)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        document = answer.json()
        assert document["apiVersion"] == "admission.k8s.io/v1"
        assert document["kind"] == "AdmissionReview"
        assert document["response"]["uid"] == body["request"]["uid"]
        response: dict[str, Any] = document["response"]
        return response

    def requests(self, outcome: str, reason: str) -> float | None:
        return self.registry.get_sample_value(
            "sidecar_injector_admission_requests_total", {"outcome": outcome, "reason": reason}
        )

    def injections(self, template: str) -> float | None:
        return self.registry.get_sample_value(
            "sidecar_injector_injections_total", {"template": template}
        )


def make_harness(
    catalog: Catalog,
    on_error: OnError = "deny",
    settings: Settings | None = None,
    max_body_bytes: int = 3 * 1024 * 1024,
) -> Harness:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.catalog(catalog, 1700000000.0)
    state = State(settings or Settings(), on_error)
    state.swap_catalog(catalog)
    state.tls_loaded = True
    webhook = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=webhook_app(state, metrics, max_body_bytes)),
        base_url="https://webhook.test",
    )
    ops = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=ops_app(state, registry)), base_url="http://ops.test"
    )
    return Harness(state, registry, webhook, ops)


def sample(inject: str = "log-shipper", **request: Any) -> dict[str, Any]:
    """The sample review, with fields of `request` replaced."""
    document = review(inject)
    document["request"].update(request)
    return document


def with_pod(document: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """`document` with its pod's metadata fields replaced."""
    document = copy.deepcopy(document)
    document["request"]["object"]["metadata"].update(metadata)
    return document


def apply_patch(pod: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    """The pod after the response's patch, checked against the Kubernetes schema."""
    assert response["patchType"] == "JSONPatch"
    ops = orjson.loads(base64.b64decode(response["patch"]))
    assert {op["op"] for op in ops} == {"add"}
    patched: dict[str, Any] = jsonpatch.apply_patch(pod, ops)
    assert_valid(patched)
    return patched


class KubeletVolume:
    """A directory updated the way the kubelet updates ConfigMap and Secret volumes: each
    version goes to a new `..<timestamp>/` directory, a `..data_tmp` symlink to it is renamed
    over `..data` (the one atomic switch), then the visible files, symlinks `<name> ->
    ..data/<name>`, are added or removed, and the previous directory is deleted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.names: set[str] = set()
        self._versions = 0

    def write(self, files: Mapping[str, str | bytes]) -> float:
        """Publish `files` as the whole new content; the monotonic time of the switch."""
        self._versions += 1
        now = datetime.datetime.now(datetime.UTC)
        stamp = now.strftime("..%Y_%m_%d_%H_%M_%S.%f") + f"{self._versions:03d}"
        version = self.root / stamp
        version.mkdir()
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            (version / name).write_bytes(data)
        link = self.root / "..data"
        previous = os.readlink(link) if link.is_symlink() else None
        os.symlink(stamp, self.root / "..data_tmp")
        os.replace(self.root / "..data_tmp", link)
        switched = time.monotonic()
        for name in files.keys() - self.names:
            os.symlink(f"..data/{name}", self.root / name)
        for name in self.names - files.keys():
            (self.root / name).unlink()
        self.names = set(files)
        if previous is not None:
            shutil.rmtree(self.root / previous)
        return switched


def secret_files(leaf: trustme.LeafCert) -> dict[str, bytes]:
    """A kubernetes.io/tls Secret's keys for a leaf certificate (chain first, then the CA's)."""
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return {"tls.crt": chain, "tls.key": leaf.private_key_pem.bytes()}


def trusting(*cas: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts exactly these CAs."""
    context = ssl.create_default_context()
    for ca in cas:
        ca.configure_trust(context)
    return context


@dataclass
class Mounts:
    """The two volumes of a pod, kubelet-style: the templates ConfigMap and the TLS Secret
    (a certificate from `ca`, issued for the service name)."""

    templates: KubeletVolume
    secret: KubeletVolume
    ca: trustme.CA

    @classmethod
    def create(cls, root: Path) -> Mounts:
        ca = trustme.CA()
        secret = KubeletVolume(root / "tls")
        secret.write(secret_files(ca.issue_cert(SERVICE_NAME)))
        return cls(KubeletVolume(root / "templates"), secret, ca)

    def args(self, *extra: str) -> list[str]:
        """Flags of a local service serving from these volumes."""
        return local_args(
            f"--templates-dir={self.templates.root}",
            f"--tls-cert={self.secret.root / 'tls.crt'}",
            f"--tls-key={self.secret.root / 'tls.key'}",
            *extra,
        )


STAMP = "reload.test/"
"""Annotation prefix of the version stamps `stamped` templates put on the pods they inject."""


def stamped(name: str, version: int) -> str:
    """A small valid template that stamps its name and version into every patch."""
    return (
        f"description: {name} version {version}\n"
        "containers:\n"
        f"  - name: {name}\n"
        f"    image: registry.example/{name}:{version}\n"
        "annotations:\n"
        f'  {STAMP}{name}: "{version}"\n'
    )


def stamps(response: Mapping[str, Any]) -> dict[str, str]:
    """Template name → version stamped into the answer's patch ({} without a patch)."""
    if "patch" not in response:
        return {}
    prefix = "/metadata/annotations/" + STAMP.replace("/", "~1")
    ops = orjson.loads(base64.b64decode(response["patch"]))
    return {
        op["path"].removeprefix(prefix): op["value"] for op in ops if op["path"].startswith(prefix)
    }
