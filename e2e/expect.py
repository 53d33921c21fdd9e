"""Reading admitted Pods: names, env, the status annotation; the same in both modes."""

from __future__ import annotations

import json
from typing import Any

from e2e.pods import STATUS, TOKEN_PATH, Obj
from e2e.target import Admission


def names(pod: Obj, key: str = "containers") -> list[str]:
    """Names of the pod's containers (or initContainers, volumes)."""
    return [entry["name"] for entry in pod["spec"].get(key, [])]


def own_volumes(pod: Obj) -> list[str]:
    """Volume names, without the token volume the apiserver adds (its name is random)."""
    return [name for name in names(pod, "volumes") if not name.startswith("kube-api-access-")]


def container(pod: Obj, name: str, key: str = "containers") -> Obj:
    found: list[Obj] = [c for c in pod["spec"].get(key, []) if c["name"] == name]
    assert len(found) == 1, f"{key} {name!r} not in {names(pod, key)}"
    return found[0]


def env(entry: Obj) -> dict[str, Any]:
    """A container's env by name: the value, or the valueFrom source."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in entry.get("env", [])}


def mounts(entry: Obj) -> dict[str, str]:
    """A container's mounts, path -> volume."""
    return {m["mountPath"]: m["name"] for m in entry.get("volumeMounts", [])}


def app_mounts(entry: Obj) -> dict[str, str]:
    return {path: name for path, name in mounts(entry).items() if path != TOKEN_PATH}


def pod_annotations(pod: Obj) -> dict[str, str]:
    found: dict[str, str] = pod["metadata"].get("annotations") or {}
    return found


def labels(pod: Obj) -> dict[str, str]:
    found: dict[str, str] = pod["metadata"].get("labels") or {}
    return found


def status(pod: Obj) -> dict[str, Any]:
    """The injector's status annotation, parsed."""
    assert STATUS in pod_annotations(pod), f"no {STATUS} annotation: not injected"
    record: dict[str, Any] = json.loads(pod_annotations(pod)[STATUS])
    return record


def injected(admission: Admission) -> list[str]:
    """Templates the stored Pod records as injected."""
    return [t["name"] for t in status(admission.stored)["templates"]]


def agreed(debug: list[dict[str, Any]]) -> dict[str, str] | None:
    """Template digests that every replica's /debug/templates shows; None while they differ
    (an edit reaches each replica's volume at its own kubelet sync)."""
    per_replica = [{t["name"]: t["digest"] for t in replica["templates"]} for replica in debug]
    return per_replica[0] if all(d == per_replica[0] for d in per_replica) else None


def digests(debug: list[dict[str, Any]]) -> dict[str, str]:
    """Template digests, which every replica must agree on."""
    found = agreed(debug)
    assert found is not None, f"replicas serve different templates: {debug}"
    return found


def assert_untouched(admission: Admission) -> None:
    """Admitted exactly as submitted: no patch, no sidecar, no status annotation."""
    assert admission.allowed, admission.message
    assert admission.patch is None
    pod, submitted = admission.stored, admission.submitted
    for key in ("containers", "initContainers"):
        assert names(pod, key) == names(submitted, key)
    assert own_volumes(pod) == own_volumes(submitted)
    assert STATUS not in pod_annotations(pod) or STATUS in pod_annotations(submitted)
    assert labels(pod) == labels(submitted)
