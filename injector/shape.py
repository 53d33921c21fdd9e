"""The shape a template's sections must have, checked when it loads: literal DNS-1123 names
unique across containers, init containers and sidecars, required entry fields, what each
placement in a pod spec refuses, label and annotation keys, targetContainers."""

from __future__ import annotations

import re

from injector.names import DNS1123_LABEL, DNS1123_SUBDOMAIN
from injector.render import Problem
from injector.template import LIST_SECTIONS, MAP_SECTIONS
from injector.types import JSON, Obj

_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")


def check_shape(body: Obj, targets: JSON, problems: list[Problem]) -> dict[str, tuple[str, ...]]:
    """Structural checks on the sections; returns the literal container and volume names."""
    for key in LIST_SECTIONS:
        if key in body and not isinstance(body[key], list):
            problems.append(((key,), "must be a list"))
            body[key] = []
    for key in MAP_SECTIONS:
        if key in body and not isinstance(body[key], dict):
            problems.append(((key,), "must be a map of string keys to string values"))
            body[key] = {}
    names: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for key in ("containers", "initContainers", "sidecars", "volumes"):
        names[key] = tuple(_named_entries(key, body.get(key, []), seen, problems))
    _check_placements(body, problems)
    _check_entries(body, "volumeMounts", ("name", "mountPath"), "mountPath", problems)
    _check_entries(body, "env", ("name",), "name", problems)
    _check_entries(body, "imagePullSecrets", ("name",), "name", problems)
    for key in MAP_SECTIONS:
        _check_string_map(key, body.get(key, {}), problems)
    _check_targets(targets, problems)
    return names


PLACEMENT_FIELDS: dict[str, dict[str, str]] = {
    "containers": {
        "restartPolicy": "only init containers take a restartPolicy: for a sidecar that runs "
        "for the pod's whole life, use sidecars: (the service places it) or initContainers: "
        "with restartPolicy: Always",
    },
    "sidecars": {
        "restartPolicy": "the placement owns it: --native-sidecars makes each sidecar an init "
        "container with restartPolicy: Always, or a regular container",
        "resizePolicy": "Kubernetes refuses it on init containers, where a native sidecar "
        "goes; a sidecar must fit both placements (move it to containers:)",
    },
    "initContainers": {
        "resizePolicy": "Kubernetes refuses it on init containers",
    },
}
"""Container fields that one place in a pod spec refuses: the error says why."""
RESTARTABLE_ONLY = ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
"""Fields an init container takes only with restartPolicy: Always."""


def _check_placements(body: Obj, problems: list[Problem]) -> None:
    """What the API server would refuse about where each container goes, said at load time
    (and for `sidecars`, in both placements)."""
    for key, refused in PLACEMENT_FIELDS.items():
        for index, entry in enumerate(body.get(key, [])):
            if not isinstance(entry, dict):
                continue
            problems += [
                ((key, index, name), f"may not be set: {why}")
                for name, why in refused.items()
                if name in entry
            ]
            if key != "initContainers":
                continue
            policy = entry.get("restartPolicy")
            if policy not in (None, "Always"):
                problems.append(
                    (
                        (key, index, "restartPolicy"),
                        "may only be Always (a native sidecar) or left out",
                    )
                )
            elif policy is None:
                problems += [
                    ((key, index, name), "may only be set on an init container with "
                     "restartPolicy: Always (a native sidecar)")
                    for name in RESTARTABLE_ONLY
                    if name in entry
                ]  # fmt: skip


def _named_entries(
    key: str, entries: list[JSON], seen: dict[str, str], problems: list[Problem]
) -> list[str]:
    kind = "volume" if key == "volumes" else "container"
    names: list[str] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(((key, index), f"each {kind} must be a map with a name"))
            continue
        name = entry.get("name")
        if not isinstance(name, str) or "{" in name or not DNS1123_LABEL.match(name):
            problems.append(
                (
                    (key, index, "name"),
                    f"{kind} name {name!r} must be a literal "
                    "DNS-1123 label (lower-case letters, digits, '-'; no expressions)",
                )
            )
            continue
        if kind == "container" and not entry.get("image"):
            problems.append(((key, index, "image"), "a container needs an image"))
        where = f"{kind}:{name}"
        if where in seen:
            problems.append(
                ((key, index, "name"), f"duplicate {kind} name {name!r} (also at {seen[where]})")
            )
        seen[where] = f"{key}[{index}]"
        names.append(name)
    return names


def _check_entries(
    body: Obj, key: str, required: tuple[str, ...], unique: str, problems: list[Problem]
) -> None:
    first: dict[str, int] = {}
    for index, entry in enumerate(body.get(key, [])):
        if not isinstance(entry, dict):
            problems.append(((key, index), f"must be a map with {', '.join(required)}"))
            continue
        for field_name in required:
            if not isinstance(entry.get(field_name), str) or not entry[field_name]:
                problems.append(((key, index, field_name), "is required (a non-empty string)"))
        value = entry.get(unique)
        if isinstance(value, str) and value in first:
            problems.append(
                (
                    (key, index, unique),
                    f"duplicate {unique} {value!r} (also at {key}[{first[value]}])",
                )
            )
        elif isinstance(value, str):
            first[value] = index


def _check_string_map(key: str, values: Obj, problems: list[Problem]) -> None:
    for name, value in values.items():
        if not _valid_key(str(name)):
            problems.append(
                (
                    (key, str(name)),
                    f"{name!r} is not a valid {key[:-1]} key "
                    "(optional DNS prefix/ then a name of at most 63 characters)",
                )
            )
        if not isinstance(value, str):
            problems.append(((key, str(name)), f"value {value!r} must be a string; quote it"))


def _check_targets(targets: JSON, problems: list[Problem]) -> None:
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        problems.append((("targetContainers",), "must be a list of container names"))


def _valid_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return bool(_QUALIFIED_NAME.match(name))
