"""Shared type aliases for the plain JSON data the engine works on."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias, TypedDict

JSON: TypeAlias = Any
"""A value parsed from JSON or YAML: dict, list, str, int, float, bool or None."""

Obj: TypeAlias = dict[str, Any]
"""A JSON object, e.g. a Pod or one of its containers."""


class AddOp(TypedDict):
    """An RFC 6902 `add` operation: the only kind of operation the injector emits."""

    op: Literal["add"]
    path: str
    value: JSON
