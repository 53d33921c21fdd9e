"""Loading templates from a kubelet-mounted ConfigMap directory or a ConfigMap manifest."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from injector.errors import LoadError
from injector.template import Template, build
from injector.types import JSON
from injector.yamlsrc import format_path, parse

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
    template, problems = build(name, located.data)
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
    text = Path(path).read_text(encoding="utf-8")
    label = os.fspath(path)
    try:
        sources = configmap_sources(text, label)
    except yaml.YAMLError:
        sources = None  # reported with its line when loaded as a template
    return [Source(Path(path).name, text, label)] if sources is None else sources


def configmap_sources(text: str, label: str) -> list[Source] | None:
    """The templates of every ConfigMap in a manifest — `data`, with lines pointing into the
    manifest, and `binaryData` decoded — or None when the manifest holds no ConfigMap."""
    loader = yaml.SafeLoader(text)
    sources: list[Source] | None = None
    try:
        while loader.check_node():
            node = loader.get_node()
            found = _configmap_data(node, label) if node is not None else None
            if found is not None:
                sources = found if sources is None else sources + found
    finally:
        loader.dispose()
    return sources


def _configmap_data(node: yaml.Node, label: str) -> list[Source] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    fields = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    kind = fields.get("kind")
    if not isinstance(kind, yaml.ScalarNode) or kind.value != "ConfigMap":
        return None
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
