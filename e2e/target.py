"""Where the scenarios run: an apiserver that admits Pods and the webhook they go through.

Scenario code talks only to `Target`, so the same scenarios run locally (an apiserver-like
client in front of the real process on this machine) and against a cluster (kubectl and helm).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pytest

from e2e.metrics import Samples
from e2e.pods import Obj

Mode = Literal["local", "cluster"]


@dataclass(frozen=True)
class Admission:
    """What came of creating one Pod."""

    submitted: Obj
    """The Pod as the webhook received it (locally: after the apiserver's own defaulting)."""
    allowed: bool
    pod: Obj | None
    """The Pod as stored, after the webhook's patch; None when it was denied."""
    message: str = ""
    """Why it was denied."""
    warnings: tuple[str, ...] = ()
    patch: list[Obj] | None = None
    """The JSON Patch answered; only local mode sees it (None: no patch, or not observable)."""

    @property
    def stored(self) -> Obj:
        assert self.allowed and self.pod is not None, f"denied: {self.message}"
        return self.pod


@dataclass(frozen=True)
class Applied:
    """What came of updating the templates ConfigMap, or a namespace."""

    allowed: bool
    message: str = ""
    """Why it was refused."""
    warnings: tuple[str, ...] = ()


class Apiserver(Protocol):
    """Creates Pods through the admission chain, as the kube-apiserver does."""

    native_sidecars: bool
    """Whether init containers keep `restartPolicy: Always` (Kubernetes 1.29+, or 1.28 with the
    SidecarContainers feature gate): the envoy-proxy template injects a native sidecar."""

    def admit(self, pod: Obj, namespace: str, *, dry_run: bool = False) -> Admission:
        """Create `pod` in `namespace` (only validated and admitted with `dry_run`)."""
        ...

    def create_deployment(self, deployment: Obj, namespace: str) -> list[Admission]:
        """Create `deployment`; the admissions of the Pods its ReplicaSet creates."""
        ...

    def update_templates(self, data: Mapping[str, str], *, dry_run: bool = False) -> Applied:
        """Replace the templates ConfigMap's data with `data` (`kubectl replace`; with `dry_run`
        only validated); the validating webhook judges it. The webhook's volume is not updated
        (the kubelet's part): see `Webhook.edit_templates`."""
        ...

    def label_namespace(self, name: str, value: str | None) -> Applied:
        """Set the namespace's inject label to `value` (None: remove it), as `kubectl label
        --overwrite` does; the validating webhook judges it."""
        ...

    def create_namespace(self, namespace: Obj, *, dry_run: bool = False) -> Applied:
        """Create `namespace` from its manifest (`kubectl create -f`; with `dry_run` only
        validated and admitted); the validating webhook judges its inject label."""
        ...


class Webhook(Protocol):
    """The running injector, operated as a cluster operator would."""

    reload_bound: float
    """Seconds a templates or certificate change may take to reach the service."""
    poll_interval: float

    def templates(self) -> dict[str, str]:
        """The templates ConfigMap's data as it is now."""
        ...

    def edit_templates(self, data: Mapping[str, str]) -> None:
        """Replace the templates ConfigMap's data (`kubectl edit configmap`)."""
        ...

    def renew_certificate(self) -> None:
        """Have the serving certificate renewed: a new key and leaf from the same CA."""
        ...

    def metrics(self) -> Samples:
        """A scrape of /metrics (summed over replicas)."""
        ...

    def debug_templates(self) -> list[dict[str, Any]]:
        """/debug/templates of every replica."""
        ...


def wait_until(check: Callable[[], bool], webhook: Webhook, what: str) -> float:
    """Poll `check` until it holds, at most the webhook's reload bound; the seconds it took."""
    started = time.monotonic()
    deadline = started + webhook.reload_bound
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {webhook.reload_bound} s"
        time.sleep(webhook.poll_interval)
    return time.monotonic() - started


@dataclass(frozen=True)
class Target:
    mode: Mode
    apiserver: Apiserver
    webhook: Webhook


def require_native_sidecars(target: Target) -> None:
    """Skip a scenario that injects envoy-proxy where the apiserver has no native sidecars:
    it drops the init container's restartPolicy and refuses the Pod (a startupProbe is only
    allowed on a sidecar)."""
    if not target.apiserver.native_sidecars:
        pytest.skip(
            "the cluster's apiserver has no native sidecars (Kubernetes 1.28: start "
            "kube-apiserver with --feature-gates=SidecarContainers=true)"
        )
