"""values.yaml, values.schema.json and the values table of docs/chart.md stay in step."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from .helm import CHART_DIR, REPO_ROOT

VALUES_FILE = CHART_DIR / "values.yaml"
VALUES: dict[str, Any] = yaml.safe_load(VALUES_FILE.read_text())
SCHEMA: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
DOCS = REPO_ROOT / "docs" / "chart.md"
ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<default>.+?) \| (?P<description>.+) \|$")
# Kubernetes pass-through objects whose optional fields values.yaml does not all spell out.
PARTIAL_OBJECTS = {
    "webhook.namespaceSelector",
    "webhook.objectSelector",
    "resources",
    "audit.resources",
}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def walk(
    value: Any, node: dict[str, Any], path: str, leaves: dict[str, Any], partial: set[str]
) -> None:
    """Collect leaves: a mapping is opened when values.yaml sets every key the schema has."""
    node = resolve(node)
    properties: dict[str, Any] = node.get("properties", {})
    if properties and isinstance(value, dict) and set(value) == set(properties):
        for key, child in properties.items():
            walk(value[key], child, f"{path}.{key}" if path else key, leaves, partial)
        return
    if properties:
        partial.add(path)
    leaves[path] = value


def value_leaves() -> tuple[dict[str, Any], set[str]]:
    leaves: dict[str, Any] = {}
    partial: set[str] = set()
    walk(VALUES, SCHEMA, "", leaves, partial)
    return leaves, partial


def values_section() -> list[str]:
    """The lines of the chart page's values table section, up to the next heading."""
    lines = DOCS.read_text().splitlines()
    start = lines.index("## Values") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def table_rows() -> list[re.Match[str]]:
    rows = [ROW.match(line) for line in values_section() if line.startswith("| `")]
    assert all(rows), "a values table row is malformed"
    return [r for r in rows if r]


def test_values_set_every_schema_key() -> None:
    _, partial = value_leaves()
    assert partial == PARTIAL_OBJECTS


def test_values_table_lists_every_leaf_in_order() -> None:
    leaves, _ = value_leaves()
    assert [r["key"] for r in table_rows()] == list(leaves)


def test_values_table_defaults_match_values_yaml() -> None:
    leaves, _ = value_leaves()
    for row in table_rows():
        value = leaves[row["key"]]
        exact = f"`{json.dumps(value)}`"
        if isinstance(value, dict | list) and value:
            assert row["default"] in (exact, "see values.yaml"), row["key"]
        else:
            assert row["default"] == exact, row["key"]
        assert row["description"].strip(), row["key"]


def documented_paths() -> set[str]:
    """Every leaf and every mapping above one."""
    leaves, _ = value_leaves()
    paths = set()
    for leaf in leaves:
        parts = leaf.split(".")
        paths |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return paths


def test_every_value_has_a_comment_in_values_yaml() -> None:
    wanted = documented_paths()
    seen: set[str] = set()
    stack: list[str] = []
    previous = ""
    for line in VALUES_FILE.read_text().splitlines():
        key = re.match(r"^( *)([A-Za-z][\w.\-/]*):", line)
        if key:
            depth = len(key[1]) // 2
            stack = [*stack[:depth], key[2]]
            path = ".".join(stack)
            if path in wanted:
                seen.add(path)
                assert previous.lstrip().startswith("#"), f"{path} has no comment above it"
        if line.strip():
            previous = line
    assert seen == wanted
