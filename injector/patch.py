"""Building the JSON Patch: explicit RFC 6902 `add` operations, never a diff."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

from injector.template import Rendered, Template
from injector.types import JSON, AddOp, Obj


class Injection(NamedTuple):
    """One template accepted for this pod, rendered."""

    template: Template
    rendered: Rendered


def escape(key: str) -> str:
    """RFC 6901: `~` → `~0`, then `/` → `~1`."""
    return key.replace("~", "~0").replace("/", "~1")


def add(path: str, value: JSON) -> AddOp:
    return {"op": "add", "path": path, "value": value}


def build(
    pod: Obj, injections: Sequence[Injection], status_key: str, status: str, native: bool = False
) -> tuple[list[AddOp], list[str]]:
    """All operations for the accepted templates, and warnings about what was left as it was.
    Each template's `sidecars` follow its containers, or with `native` its init containers
    (as init containers with restartPolicy: Always)."""
    spec: Obj = pod["spec"]
    metadata: Obj = pod["metadata"]
    ops: list[AddOp] = []
    warnings: list[str] = []
    # Plain loops rather than comprehensions and generators throughout: on Python 3.11 each of
    # those is a function call, and this runs on every review.
    containers: list[JSON] = []
    init_containers: list[JSON] = []
    volumes: list[JSON] = []
    secrets: list[Obj] = []
    for injection in injections:
        rendered = injection.rendered
        containers += rendered.containers
        init_containers += rendered.init_containers
        if rendered.sidecars:
            if native:
                for sidecar in rendered.sidecars:
                    init_containers.append({**sidecar, "restartPolicy": "Always"})
            else:
                containers += rendered.sidecars
        volumes += rendered.volumes
        secrets += rendered.image_pull_secrets
    if containers:
        _append(ops, spec, "/spec", "containers", containers)
    if init_containers:
        _prepend(ops, spec, "/spec", "initContainers", init_containers)
    if volumes:
        _append(ops, spec, "/spec", "volumes", volumes)
    _app_containers(ops, warnings, spec, injections)
    if secrets:
        _append(ops, spec, "/spec", "imagePullSecrets", _pull_secrets(spec, secrets))
    if len(injections) == 1:
        labels = injections[0].rendered.labels
        annotations = dict(injections[0].rendered.annotations)
    else:
        labels = _first_wins([i.rendered.labels for i in injections])
        annotations = _first_wins([i.rendered.annotations for i in injections])
    _merge_map(ops, metadata, "labels", labels)
    annotations.pop(status_key, None)
    annotations[status_key] = status  # last, so it is the final op
    _merge_map(ops, metadata, "annotations", annotations)
    return ops, warnings


def _append(ops: list[AddOp], parent: Obj, base: str, key: str, items: list[JSON]) -> None:
    if not items:
        return
    if isinstance(parent.get(key), list):
        path = f"{base}/{key}/-"
        for item in items:
            ops.append({"op": "add", "path": path, "value": item})
    else:
        ops.append(add(f"{base}/{key}", list(items)))


def _prepend(ops: list[AddOp], parent: Obj, base: str, key: str, items: list[JSON]) -> None:
    if isinstance(parent.get(key), list):
        for index, item in enumerate(items):
            ops.append({"op": "add", "path": f"{base}/{key}/{index}", "value": item})
    else:
        ops.append(add(f"{base}/{key}", list(items)))


def _merge_map(ops: list[AddOp], metadata: Obj, key: str, values: dict[str, str]) -> None:
    """Add the keys the pod does not have yet; the pod's own values always win."""
    current = metadata.get(key)
    if not isinstance(current, dict):
        if values:
            ops.append(add(f"/metadata/{key}", dict(values)))
        return
    for name, value in values.items():
        if name not in current:
            ops.append({"op": "add", "path": f"/metadata/{key}/{_escaped(name)}", "value": value})


@functools.lru_cache(maxsize=4096)
def _escaped(key: str) -> str:
    """`escape`, remembered: the keys are the templates' own label and annotation keys."""
    return escape(key)


def _first_wins(maps: list[dict[str, str]]) -> dict[str, str]:
    """The maps merged into a new one, the first to set a key keeping it."""
    merged: dict[str, str] = {}
    for values in maps:
        for key, value in values.items():
            merged.setdefault(key, value)
    return merged


def _pull_secrets(spec: Obj, secrets: list[Obj]) -> list[Obj]:
    seen = {s.get("name") for s in spec.get("imagePullSecrets") or () if isinstance(s, dict)}
    added: list[Obj] = []
    for secret in secrets:
        if secret["name"] not in seen:
            seen.add(secret["name"])
            added.append(secret)
    return added


def _app_containers(
    ops: list[AddOp], warnings: list[str], spec: Obj, injections: Sequence[Injection]
) -> None:
    """Template env and volumeMounts into the pod's own containers, never over the pod's."""
    containers: list[Obj] = spec["containers"]
    targeted = False
    relevant: list[Injection] = []
    for injection in injections:
        targeted = targeted or bool(injection.template.target_containers)
        if injection.rendered.env or injection.rendered.volume_mounts:
            relevant.append(injection)
    if targeted:
        _warn_missing_targets(warnings, containers, injections)
    if not relevant:
        return
    for index, container in enumerate(containers):
        name = container.get("name")
        env: list[tuple[str, list[Obj]]] = []
        mounts: list[tuple[str, list[Obj]]] = []
        for template, rendered in relevant:
            if template.target_containers and name not in template.target_containers:
                continue
            if rendered.env:
                env.append((template.name, rendered.env))
            if rendered.volume_mounts:
                mounts.append((template.name, rendered.volume_mounts))
        base = f"/spec/containers/{index}"
        if env:
            _append(
                ops, container, base, "env", _not_yet_set(container, "env", "name", env, warnings)
            )
        if mounts:
            added = _not_yet_set(container, "volumeMounts", "mountPath", mounts, warnings)
            _append(ops, container, base, "volumeMounts", added)


def _warn_missing_targets(
    warnings: list[str], containers: list[Obj], injections: Sequence[Injection]
) -> None:
    names = {c.get("name") for c in containers}
    for injection in injections:
        missing = [t for t in injection.template.target_containers if t not in names]
        if missing:
            warnings.append(
                f"template {injection.template.name!r}: targetContainers {', '.join(missing)} "
                "not found in the pod; nothing added to them"
            )


def _not_yet_set(
    container: Obj, key: str, field: str, sources: list[tuple[str, list[Obj]]], warnings: list[str]
) -> list[JSON]:
    """The entries whose `field` (env name, mount path) the container does not have yet; the
    first to set one keeps it — the pod before any template, templates in order."""
    existing = container.get(key)
    owners: dict[str, str] = {}
    for entry in existing if isinstance(existing, list) else ():
        if isinstance(entry, dict):
            owners[str(entry.get(field))] = ""
    added: list[JSON] = []
    for template, entries in sources:
        for entry in entries:
            owner = owners.setdefault(entry[field], template)
            if owner == template:
                added.append(entry)
                continue
            by = "the pod" if owner == "" else f"template {owner!r}"
            what = "env var" if key == "env" else "mount path"
            warnings.append(
                f"template {template!r}: container {container.get('name')!r} already has {what} "
                f"{entry[field]} (set by {by}); kept it as it was"
            )
    return added
