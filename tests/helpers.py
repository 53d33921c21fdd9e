"""Building templates and catalogs from inline YAML for tests, and checking golden files."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from injector.catalog import Catalog
from injector.loader import Source, load_sources
from injector.template import Template

VIEW: dict[str, Any] = {
    "name": "web-1",
    "generateName": "web-",
    "namespace": "shop",
    "labels": {"app": "web"},
    "annotations": {},
    "serviceAccountName": "web",
}


def catalog(**templates: str) -> Catalog:
    """A catalog from name=yaml pairs (underscores in names become dashes); all must load."""
    sources = [
        Source(f"{name.replace('_', '-')}.yaml", textwrap.dedent(text), name)
        for name, text in templates.items()
    ]
    result = load_sources(sources)
    assert not result.errors, result.errors
    return Catalog.from_load(result)


def template(text: str, name: str = "t") -> Template:
    return catalog(**{name: text}).templates[name]


REGENERATE = os.environ.get("REGENERATE_GOLDEN") == "1"


def check_golden(
    case: Path,
    actual: Mapping[str, str],
    inputs: Collection[str],
    parse: Callable[[str, str], Any],
) -> None:
    """`case`'s golden files equal `actual` (file name → text) once both are parsed by
    `parse(name, text)`; files that are neither inputs nor outputs fail the case as stale.
    REGENERATE_GOLDEN=1 writes `actual` first."""
    stale = {p.name for p in case.iterdir()} - {*inputs, *actual}
    assert not stale, f"unexpected files in {case}: {sorted(stale)}"
    if REGENERATE:
        for name, text in actual.items():
            (case / name).write_text(text)
    for name, text in actual.items():
        expected = case / name
        assert expected.exists(), f"{expected} is missing; run with REGENERATE_GOLDEN=1"
        assert parse(name, text) == parse(name, expected.read_text()), (
            f"{expected} is stale; review the diff, then run with REGENERATE_GOLDEN=1"
        )
