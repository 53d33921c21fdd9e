"""The set of templates requests see: immutable, swapped whole, with last-known-good merging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from injector.errors import InjectionError, LoadError
from injector.loader import LoadResult
from injector.template import Template

NONE: Mapping[str, Template] = MappingProxyType({})


@dataclass(frozen=True)
class Catalog:
    """Templates by name plus the current load errors; a request keeps the one it started with."""

    templates: Mapping[str, Template] = field(default_factory=dict)
    errors: Mapping[str, tuple[LoadError, ...]] = field(default_factory=dict)
    last_good: frozenset[str] = frozenset()
    """Templates that fail to load and are served from the last-good ConfigMap, this
    process having no good version of its own."""

    @classmethod
    def from_load(cls, result: LoadResult, fallback: Mapping[str, Template] = NONE) -> Catalog:
        return cls().merge(result, fallback)

    def merge(self, result: LoadResult, fallback: Mapping[str, Template] = NONE) -> Catalog:
        """The next catalog after a reload: a template that now fails keeps the good version
        this process last loaded (one it took from a fallback gives way to the fallback now
        given), else the one in `fallback` (the last-good ConfigMap: what
        the audit kept for every replica); a template no longer present is gone; errors
        always reflect this load."""
        templates = dict(result.templates)
        kept: set[str] = set()
        for name in result.errors:
            if name in templates:
                continue
            if name in self.templates and (name not in self.last_good or name not in fallback):
                templates[name] = self.templates[name]
                if name in self.last_good:
                    kept.add(name)
            elif name in fallback:  # never loaded here, or only from an older fallback
                templates[name] = fallback[name]
                kept.add(name)
        return Catalog(
            MappingProxyType(templates),
            MappingProxyType({name: tuple(errs) for name, errs in result.errors.items()}),
            frozenset(kept),
        )

    def lookup(self, name: str) -> Template | InjectionError:
        """The template, or an error that tells the user what exists."""
        template = self.templates.get(name)
        if template is not None:
            return template
        if name in self.errors:
            details = "; ".join(str(e) for e in self.errors[name])
            return InjectionError(
                "template_load_failed",
                f"template {name!r} failed to load and has no previous good version: {details}",
                name,
            )
        listed = sorted(n for n, t in self.templates.items() if not t.hidden)
        available = ", ".join(listed) or "none loaded"
        return InjectionError(
            "template_not_found", f"template {name!r} not found; available: {available}", name
        )

    def missing(self, names: Iterable[str]) -> list[str]:
        """The names no request could get a template for (never loaded, or broken)."""
        return [name for name in names if name not in self.templates]

    @property
    def broken(self) -> list[str]:
        """Names that have load errors and nothing to fall back to."""
        return sorted(name for name in self.errors if name not in self.templates)

    @property
    def digests(self) -> dict[str, str]:
        """Template name → the digest pods record for it (what they got from it)."""
        return {name: template.digest for name, template in self.templates.items()}
