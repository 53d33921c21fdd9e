"""Loading templates from a kubelet-mounted ConfigMap directory or a ConfigMap manifest."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from injector.build import build
from injector.errors import LoadError
from injector.lists import ListError, is_list, objects
from injector.template import Template
from injector.types import JSON
from injector.yamlsrc import _Loader, format_path, parse

SUFFIX = ".yaml"


@dataclass(frozen=True)
class Source:
    """One template's text and where it came from (for messages)."""

    key: str  # the ConfigMap key / file name, e.g. log-shipper.yaml
    text: str
    label: str  # what error messages call the file
    line_offset: int = 0  # lines before the text in the file the user edits
    read_error: str | None = None


@dataclass
class LoadResult:
    """Every template that loaded, and every problem of the ones that did not."""

    templates: dict[str, Template] = field(default_factory=dict)
    errors: dict[str, list[LoadError]] = field(default_factory=dict)


def load_sources(sources: Iterable[Source]) -> LoadResult:
    """Validate and compile each source on its own: one broken file never hides the others."""
    result = LoadResult()
    for source in sorted(sources, key=lambda s: s.key):
        name = source.key.removesuffix(SUFFIX)
        if not source.key.endswith(SUFFIX) or not name:
            result.errors[source.key] = [
                LoadError(source.label, f"not a template: keys must be named <template>{SUFFIX}")
            ]
            continue
        if source.read_error is not None:
            result.errors[name] = [LoadError(source.label, f"cannot read: {source.read_error}")]
            continue
        try:
            template, errors = _load_one(name, source)
        except Exception as exc:  # a case validation missed must not hide the other files
            template, errors = None, [LoadError(source.label, f"cannot load: {exc!r}")]
        if template is not None:
            result.templates[name] = template
        else:
            result.errors[name] = errors
    return result


def stand_ins(result: LoadResult, last_good: Iterable[Source]) -> dict[str, Template]:
    """The last good versions (`last_good`: the last-good ConfigMap's files) of the templates
    that failed in `result`: only those are loaded, the others are never read."""
    wanted = {name + SUFFIX for name in result.errors}
    return load_sources(s for s in last_good if s.key in wanted).templates if wanted else {}


def _load_one(name: str, source: Source) -> tuple[Template | None, list[LoadError]]:
    try:
        located = parse(source.text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 + source.line_offset if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [LoadError(source.label, f"invalid YAML: {problem}", line=line)]
    errors = [
        LoadError(source.label, "duplicate key", format_path(path), line + source.line_offset)
        for path, line in located.duplicate_keys
    ]
    template, problems = build(name, located.data, source.text)
    for path, message in problems:
        line = located.line(path)
        errors.append(
            LoadError(
                source.label,
                message,
                format_path(path),
                None if line is None else line + source.line_offset,
            )
        )
    errors.sort(key=lambda e: e.line or 0)
    return (template if not errors else None), errors


def directory_sources(directory: str | os.PathLike[str]) -> list[Source]:
    """The files of a mounted ConfigMap; dot entries (`..data`, `..2024_…`) are the kubelet's."""
    root = Path(directory)
    sources: list[Source] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.is_dir():
            continue
        if entry.is_symlink() and not entry.exists():
            continue  # the kubelet removes a deleted key's link just after the ..data swap
        try:
            sources.append(Source(entry.name, entry.read_text(encoding="utf-8"), entry.name))
        except (OSError, UnicodeDecodeError) as exc:
            sources.append(Source(entry.name, "", entry.name, read_error=str(exc)))
    return sources


def object_sources(data: JSON, binary_data: JSON) -> list[Source]:
    """The templates of a ConfigMap object as the API holds it: its `data`, and its
    `binaryData` decoded, both of which the kubelet writes as files (dot keys are skipped,
    as in a directory)."""
    sources = [
        Source(str(key), str(text), str(key))
        for key, text in _entries(data)
        if not str(key).startswith(".")
    ]
    for key, encoded in _entries(binary_data):
        if str(key).startswith("."):
            continue
        try:
            text = base64.b64decode(str(encoded), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            sources.append(Source(str(key), "", str(key), read_error=f"binaryData: {exc}"))
        else:
            sources.append(Source(str(key), text, str(key)))
    return sources


def _entries(field_value: JSON) -> list[tuple[JSON, JSON]]:
    return list(field_value.items()) if isinstance(field_value, Mapping) else []


def load_directory(directory: str | os.PathLike[str]) -> LoadResult:
    return load_sources(directory_sources(directory))


def file_sources(path: str | os.PathLike[str]) -> list[Source]:
    """A ConfigMap manifest's templates (none, if its ConfigMaps hold none), or the file
    itself as one template."""
    return [source for group in file_groups(path).groups for source in group]


@dataclass
class Manifest:
    """What a file given to `validate` holds: the templates of each ConfigMap in it, one
    group per ConfigMap (each loads on its own: two ConfigMaps may both hold `a.yaml`), or
    the file itself as the one template of the one group."""

    groups: list[list[Source]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """The ConfigMaps in Lists passed over for holding no template, named for a note."""


def file_groups(path: str | os.PathLike[str]) -> Manifest:
    """`file_sources`, a group per ConfigMap; raises ListError for Lists it cannot walk."""
    text = Path(path).read_text(encoding="utf-8")
    label = os.fspath(path)
    try:
        found = configmaps(text, label)
    except yaml.YAMLError:
        found = None  # reported with its line when loaded as a template
    return Manifest([[Source(Path(path).name, text, label)]]) if found is None else found


def configmap_sources(text: str, label: str) -> list[Source] | None:
    """The templates of every ConfigMap in a manifest — `data`, with lines pointing into the
    manifest, and `binaryData` decoded — or None when the manifest holds no ConfigMap."""
    found = configmaps(text, label)
    return None if found is None else [source for group in found.groups for source in group]


def configmaps(text: str, label: str) -> Manifest | None:
    """The templates ConfigMaps of a manifest, each document's and those in its Lists
    (`lists.objects`); None when it holds neither a ConfigMap nor a List (then it is a
    template). Raises ListError for Lists nested too deep, yaml.YAMLError for bad YAML.

    Which ConfigMaps: every ConfigMap written as a document of its own, all its keys (the
    user put it in the file as templates); of the ConfigMaps inside a List, only those holding
    at least one `<template>.yaml` key. A List is what `kubectl get configmap -o yaml` prints
    for a whole namespace, which sweeps in kube-root-ca.crt (`ca.crt`), the chart's dashboard
    (`dashboard.json`) and the applications' own: validated, each would fail as "not a
    template" and the command would fail on every namespace. Those are named in
    `Manifest.skipped` instead, never dropped silently."""
    loader = _Loader(text)
    found: Manifest | None = None
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = loader.construct_document(node)
            if is_list(doc):  # a manifest, even when its Lists hold no ConfigMap
                found = found or Manifest()
            for item in objects(doc):
                if item.kind != "ConfigMap":
                    continue
                found = found or Manifest()
                at = _node_at(node, item.path)
                where = f"{label} {item.label()}" if item.position else label
                sources = _configmap_data(at, where) if at is not None else []
                if item.position and not any(s.key.endswith(SUFFIX) for s in sources):
                    found.skipped.append(where)
                else:
                    found.groups.append(sources)
    except RecursionError:  # the pure-Python parser recurses per level of nesting
        raise ListError("values nested too deeply") from None
    finally:
        loader.dispose()
    return found


def _node_at(node: yaml.Node, path: tuple[str | int, ...]) -> yaml.MappingNode | None:
    """The node at `path` (as `lists.Item.path` gives it) in a document's node tree; a
    duplicated key resolves to its last value, as when the document is constructed."""
    for step in path:
        if isinstance(step, int) and isinstance(node, yaml.SequenceNode):
            node = node.value[step]
        elif isinstance(node, yaml.MappingNode):
            values = [
                v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step
            ]
            if not values:
                return None
            node = values[-1]
        else:
            return None
    return node if isinstance(node, yaml.MappingNode) else None


def _configmap_data(node: yaml.MappingNode, label: str) -> list[Source]:
    fields = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    sources = []
    data = fields.get("data")
    for key_node, value_node in data.value if isinstance(data, yaml.MappingNode) else ():
        if str(key_node.value).startswith("."):
            continue
        # A block scalar (`|`) starts on the line after its indicator.
        block = isinstance(value_node, yaml.ScalarNode) and value_node.style in ("|", ">")
        offset = value_node.start_mark.line + (1 if block else 0)
        sources.append(
            Source(str(key_node.value), str(value_node.value), f"{label}[{key_node.value}]", offset)
        )
    binary = fields.get("binaryData")
    if isinstance(binary, yaml.MappingNode):
        encoded = {str(k.value): str(v.value) for k, v in binary.value}
        sources += [
            Source(s.key, s.text, f"{label}[binaryData {s.key}]", read_error=s.read_error)
            for s in object_sources({}, encoded)
        ]
    return sources
