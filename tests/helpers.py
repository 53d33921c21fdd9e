"""Building templates and catalogs from inline YAML for tests."""

from __future__ import annotations

import textwrap
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
