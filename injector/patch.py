"""Building the JSON Patch: explicit RFC 6902 `add` operations, never a diff."""

from __future__ import annotations

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
    rendered = [i.rendered for i in injections]
    containers, init_containers = _placed(rendered, native)
    _append(ops, spec, "/spec", "containers", containers)
    _prepend(ops, spec, "/spec", "initContainers", init_containers)
    _append(ops, spec, "/spec", "volumes", [v for r in rendered for v in r.volumes])
    _app_containers(ops, warnings, spec, injections)
    _append(ops, spec, "/spec", "imagePullSecrets", _pull_secrets(spec, rendered))
    _merge_map(ops, metadata, "labels", _first_wins([r.labels for r in rendered]))
    annotations = _first_wins([r.annotations for r in rendered])
    annotations.pop(status_key, None)
    annotations[status_key] = status  # last, so it is the final op
    _merge_map(ops, metadata, "annotations", annotations)
    return ops, warnings


def _placed(rendered: list[Rendered], native: bool) -> tuple[list[JSON], list[JSON]]:
    """The containers and init containers to add, in template order."""
    if not any(r.sidecars for r in rendered):
        return [c for r in rendered for c in r.containers], [
            c for r in rendered for c in r.init_containers
        ]
    if native:
        return [c for r in rendered for c in r.containers], [
            c
            for r in rendered
            for c in (*r.init_containers, *({**s, "restartPolicy": "Always"} for s in r.sidecars))
        ]
    return [c for r in rendered for c in (*r.containers, *r.sidecars)], [
        c for r in rendered for c in r.init_containers
    ]


def _append(ops: list[AddOp], parent: Obj, base: str, key: str, items: list[JSON]) -> None:
    if not items:
        return
    if isinstance(parent.get(key), list):
        path = f"{base}/{key}/-"
        ops += [{"op": "add", "path": path, "value": item} for item in items]
    else:
        ops.append(add(f"{base}/{key}", list(items)))


def _prepend(ops: list[AddOp], parent: Obj, base: str, key: str, items: list[JSON]) -> None:
    if not items:
        return
    if isinstance(parent.get(key), list):
        ops += [
            {"op": "add", "path": f"{base}/{key}/{index}", "value": item}
            for index, item in enumerate(items)
        ]
    else:
        ops.append(add(f"{base}/{key}", list(items)))


def _merge_map(ops: list[AddOp], metadata: Obj, key: str, values: dict[str, str]) -> None:
    """Add the keys the pod does not have yet; the pod's own values always win."""
    current = metadata.get(key)
    if not isinstance(current, dict):
        if values:
            ops.append(add(f"/metadata/{key}", values))
        return
    ops += [
        {"op": "add", "path": f"/metadata/{key}/{escape(k)}", "value": v}
        for k, v in values.items()
        if k not in current
    ]


def _first_wins(maps: list[dict[str, str]]) -> dict[str, str]:
    if len(maps) == 1:
        return dict(maps[0])
    merged: dict[str, str] = {}
    for values in maps:
        for key, value in values.items():
            merged.setdefault(key, value)
    return merged


def _pull_secrets(spec: Obj, rendered: list[Rendered]) -> list[Obj]:
    seen = {s.get("name") for s in spec.get("imagePullSecrets") or () if isinstance(s, dict)}
    added: list[Obj] = []
    for secret in (s for r in rendered for s in r.image_pull_secrets):
        if secret["name"] not in seen:
            seen.add(secret["name"])
            added.append(secret)
    return added


def _app_containers(
    ops: list[AddOp], warnings: list[str], spec: Obj, injections: Sequence[Injection]
) -> None:
    """Template env and volumeMounts into the pod's own containers, never over the pod's."""
    containers: list[Obj] = spec["containers"]
    if any(i.template.target_containers for i in injections):
        _warn_missing_targets(warnings, containers, injections)
    relevant = [i for i in injections if i.rendered.env or i.rendered.volume_mounts]
    if not relevant:
        return
    for index, container in enumerate(containers):
        name = container.get("name")
        env: list[tuple[str, list[Obj]]] = []
        mounts: list[tuple[str, list[Obj]]] = []
        for injection in relevant:
            template, rendered = injection
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
    owners = {
        str(entry.get(field)): ""
        for entry in (existing if isinstance(existing, list) else ())
        if isinstance(entry, dict)
    }
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
