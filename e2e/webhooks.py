"""The webhook as the chart runs it in a cluster (its Deployment, operated with kubectl; on a node,
with the suite's own TLS), and the chart values of each cluster mode."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

from e2e.chart import NAMESPACE, Release
from e2e.kubectl import Kubectl, is_ready
from e2e.metrics import Samples
from e2e.pki import CAIssuer, Issued
from e2e.pods import Obj
from tests.chart.helm import webhook_object

CERT_RENEWAL_TIMEOUT = 120.0
KUBELET_SYNC_BOUND = 150.0
"""A ConfigMap or Secret edit reaches the mounted volume after the kubelet's sync period and
cache TTL (about a minute each by default), then the service's own 2 s."""
EXTERNAL_HOST = "127.0.0.1"
"""The external webhook listens here: the bare apiserver must run on this machine."""


class InClusterWebhook:
    """The chart's Deployment, operated with kubectl; ops endpoints through the pods proxy."""

    reload_bound = KUBELET_SYNC_BOUND
    poll_interval = 2.0

    def __init__(self, kubectl: Kubectl, release: Release) -> None:
        self.kubectl = kubectl
        self.release = release

    def templates(self) -> dict[str, str]:
        data: dict[str, str] = self._configmap().get("data") or {}
        return data

    def edit_templates(self, data: Mapping[str, str]) -> None:
        configmap = self._configmap()
        configmap["data"] = dict(data)
        self.kubectl.run("replace", "--filename=-", input=json.dumps(configmap))

    def renew_certificate(self) -> None:
        """What `cmctl renew` does: mark the serving Certificate as Issuing; cert-manager
        issues a new key and leaf from the same CA into the Secret."""
        name = self.release.serving_certificate["metadata"]["name"]
        before = self._secret()["data"]["tls.crt"]
        condition = {
            "type": "Issuing",
            "status": "True",
            "reason": "ManuallyTriggered",
            "message": "Certificate re-issuance manually triggered by the e2e suite",
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        patch = [{"op": "add", "path": "/status/conditions/-", "value": condition}]
        self.kubectl.run(
            "patch", "certificate", name, f"--namespace={NAMESPACE}", "--subresource=status",
            "--type=json", f"--patch={json.dumps(patch)}",
        )  # fmt: skip
        deadline = time.monotonic() + CERT_RENEWAL_TIMEOUT
        while self._secret()["data"]["tls.crt"] == before:
            assert time.monotonic() < deadline, "cert-manager did not renew the certificate"
            time.sleep(2)

    def metrics(self) -> Samples:
        return Samples.combine(
            Samples.parse(self.ops(pod, "/metrics")) for pod in self.ready_pods()
        )

    def debug_templates(self) -> list[dict[str, Any]]:
        return [json.loads(self.ops(pod, "/debug/templates")) for pod in self.ready_pods()]

    def _configmap(self) -> Obj:
        name = self.release.templates_configmap["metadata"]["name"]
        configmap: Obj = self.kubectl.get("configmap", name, f"--namespace={NAMESPACE}")
        return configmap

    def _secret(self) -> Obj:
        secret: Obj = self.kubectl.get(
            "secret", self.release.tls_secret_name, f"--namespace={NAMESPACE}"
        )
        return secret

    def all_pods(self) -> list[Obj]:
        """The webhook's Pods whatever their state (starting, terminating), oldest first."""
        labels = webhook_object(self.release.docs, "Deployment")["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        pods = self.kubectl.get("pods", f"--namespace={NAMESPACE}", f"--selector={selector}")
        found: list[Obj] = pods["items"]
        return sorted(found, key=lambda pod: pod["metadata"]["creationTimestamp"])

    def ready_pods(self) -> list[str]:
        """The webhook's ready pods, not terminating: a deleted Pod stays Ready until the
        kubelet's next probe, after its process may have stopped serving (a rollout)."""
        ready = [
            pod["metadata"]["name"]
            for pod in self.all_pods()
            if is_ready(pod) and "deletionTimestamp" not in pod["metadata"]
        ]
        assert ready, "no webhook pod is ready"
        return ready

    def ops(self, pod: str, path: str) -> str:
        """GET `path` of one webhook Pod's ops port, through the apiserver's pod proxy."""
        port = self.release.args["--metrics-port"]
        return self.kubectl.raw(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:{port}/proxy{path}")


class NodeWebhook(InClusterWebhook):
    """The chart's Deployment on a real node, serving the suite's certificate: renewed as
    cert-manager renews it (a new key and leaf from the same CA written into the Secret), the
    kubelet then updates the mounted volume."""

    def __init__(self, kubectl: Kubectl, release: Release, ca: CAIssuer) -> None:
        super().__init__(kubectl, release)
        self.ca = ca

    def write_secret(self) -> Issued:
        """A new serving certificate into the chart's Secret (created or replaced)."""
        issued = self.ca.issue(self.release.serving_certificate["spec"])
        self.kubectl.apply(tls_secret(self.release, issued))
        return issued

    def renew_certificate(self) -> None:
        self.write_secret()


def tls_secret(release: Release, issued: Issued) -> Obj:
    """The serving Secret as cert-manager writes it (type kubernetes.io/tls; tls.crt, tls.key,
    ca.crt), which `tls.existingSecret` names."""
    data = {key: base64.b64encode(value.encode()).decode() for key, value in issued.secret.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": release.tls_secret_name, "namespace": NAMESPACE},
        "data": data,
    }


def node_values(image: str, ca_bundle: bytes, release: Release) -> dict[str, Any]:
    """Node mode's values: E2E_IMAGE, no cert-manager, the suite's Secret and CA."""
    return {
        **image_values(image),
        "certManager": {"enabled": False},
        "tls": {"existingSecret": release.tls_secret_name},
        "webhook": {"caBundle": ca_bundle.decode()},
    }


def image_values(image: str) -> dict[str, Any]:
    """E2E_IMAGE (`repo:tag` or `repo@sha256:...`) as chart values; empty: the chart's."""
    if not image:
        return {}
    if "@" in image:
        repository, digest = image.split("@", 1)
        return {"image": {"repository": repository, "digest": digest}}
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"E2E_IMAGE={image!r}: expected repo:tag"
    return {"image": {"repository": repository, "tag": tag}}


def external_values(
    release: Release, port: int, ca_bundle: bytes, url: bool = True
) -> dict[str, Any]:
    """Chart values that send the apiserver to the process on this machine, trusting its CA:
    at webhook.url, or (url=False) through the chart's Service."""
    webhook = {"caBundle": ca_bundle.decode()}
    if url:
        webhook["url"] = f"https://{EXTERNAL_HOST}:{port}{release.path}"
    return {
        "webhook": webhook,
        "certManager": {"enabled": False},
        "tls": {"existingSecret": release.tls_secret_name},
    }
