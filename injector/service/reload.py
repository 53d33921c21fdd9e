"""What a new version of the mounted files does: templates merged and swapped, TLS swapped."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from injector.catalog import Catalog
from injector.loader import LoadResult, Source, directory_sources, load_sources, stand_ins
from injector.policy import Settings
from injector.service.metrics import Metrics
from injector.service.state import State
from injector.service.tls import KeyPair, Served, TLSError, TLSHolder, build, read_pair
from injector.template import Template
from injector.validation import emptied

log = structlog.get_logger("injector.service.reload")

TemplateFiles = tuple[Source, ...] | str
"""Every template file's text, or why the directory could not be listed."""


@dataclass(frozen=True)
class Loaded:
    """A load of the templates directory, with the last-good versions of the templates that
    failed, read from the last-good directory (none without one)."""

    result: LoadResult
    last_good: Mapping[str, Template] = field(default_factory=dict)
    last_good_problem: str | None = None
    """Why the last-good directory could not be read, when it was needed."""


class Templates:
    """The templates directory. A reload validates every file, keeps the last good version of a
    template that now fails (`Catalog.merge`) and swaps the whole catalog in one assignment:
    a request keeps the catalog it started with, so none sees a half-loaded set."""

    name = "templates"

    def __init__(
        self,
        directory: Path,
        state: State,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        last_good_dir: Path | None = None,
    ) -> None:
        self.directory = directory
        self.last_good_dir = last_good_dir
        self.state = state
        self.metrics = metrics
        self.clock = clock
        self._fingerprint: Fingerprint | None = None
        self._files: tuple[Source, ...] = ()

    def read(self) -> TemplateFiles:
        """The files' texts, re-read only when their metadata changed: a poll of 1,000
        templates then costs 1,000 stat calls, not 1,000 reads."""
        try:
            fingerprint = _fingerprint(self.directory)
            if fingerprint != self._fingerprint:
                self._files = tuple(directory_sources(self.directory))
                self._fingerprint = fingerprint
            return self._files
        except OSError as exc:
            self._fingerprint = None
            return f"cannot read --templates-dir {self.directory}: {exc}"

    def build(self, files: TemplateFiles) -> Loaded | str:
        return files if isinstance(files, str) else self._load(files)

    def _load(self, files: tuple[Source, ...]) -> Loaded:
        """Load the files; for the templates that fail, their last-good versions too (read
        only then: the directory matters only while a template is broken)."""
        result = load_sources(files)
        if not result.errors or self.last_good_dir is None:
            return Loaded(result)
        try:
            sources = directory_sources(self.last_good_dir)
        except OSError as exc:
            return Loaded(result, last_good_problem=f"cannot read {self.last_good_dir}: {exc}")
        return Loaded(result, stand_ins(result, sources))

    def load_first(self, files: tuple[Source, ...]) -> None:
        """Start-up: broken templates are logged and denied on request, never fatal."""
        loaded = self._load(files)
        catalog = Catalog.from_load(loaded.result, loaded.last_good)
        self.state.swap_catalog(catalog)
        self.metrics.catalog(catalog, self.clock())
        log_load_errors(catalog, loaded, self.last_good_dir)
        log.info("templates_loaded", templates=sorted(catalog.templates), broken=catalog.broken)
        log_missing_profile_templates(catalog, self.state.settings)

    def apply(self, built: Loaded | str) -> None:
        if isinstance(built, str):
            log.error("templates_reload_failed", error=built, kept="all templates as they were")
            self.metrics.templates_reload_failed()
            return
        old = self.state.catalog
        refused = emptied(old.templates, built.result)
        if refused is not None:
            log.error("templates_reload_refused", reason=refused, kept=sorted(old.templates))
            self.metrics.templates_reload_failed()
            return
        new = old.merge(built.result, built.last_good)
        self.state.swap_catalog(new)
        self.metrics.templates_reloaded(new, self.clock())
        log_load_errors(new, built, self.last_good_dir)
        level = log.warning if new.errors else log.info
        level("templates_reloaded", **changes(old, new))
        log_missing_profile_templates(new, self.state.settings)

    def crashed(self) -> None:
        self.metrics.templates_reload_failed()


Fingerprint = tuple[object, ...]


def _fingerprint(directory: Path) -> Fingerprint:
    """What changes whenever a file's content may have changed. A kubelet volume changes only
    by swapping its `..data` link, so that link's target and the names are enough: a poll is
    two system calls whatever the number of templates. Elsewhere: name, inode, size and mtime
    of every entry, through symlinks (an in-place edit changes its mtime)."""
    try:
        return ("kubelet", os.readlink(directory / "..data"), tuple(sorted(os.listdir(directory))))
    except OSError:  # no ..data link: not a kubelet volume
        pass
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                info = entry.stat()
            except FileNotFoundError:  # a dangling symlink; reading it reports the error
                found.append((entry.name, 0, 0, 0))
                continue
            found.append((entry.name, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


def log_load_errors(catalog: Catalog, loaded: Loaded, last_good_dir: Path | None) -> None:
    """One line per failed template, each problem with its file, field and line, and what
    is served instead: the version this process loaded before, the last good version from
    the last-good directory, or nothing; and why that directory could not be read."""
    if loaded.last_good_problem is not None:
        log.error("last_good_unreadable", error=loaded.last_good_problem)
    for name, errors in sorted(catalog.errors.items()):
        template = catalog.templates.get(name)
        if template is None:
            instead: dict[str, str] = {"serving": "nothing (denied)"}
        elif name in catalog.last_good:
            instead = {
                "serving": "last good version",
                "digest": template.digest,
                "from": str(last_good_dir),
            }
        else:
            instead = {"serving": "previous version", "digest": template.digest}
        log.warning(
            "template_load_failed",
            template=name,
            **instead,
            errors=[
                {"file": e.file, "line": e.line, "field": e.path, "message": e.message}
                for e in errors
            ],
        )


def log_missing_profile_templates(catalog: Catalog, settings: Settings) -> None:
    """A profile (or the default set, `enabled`) naming a template that is not loaded: pods
    relying on it are denied like any request for a missing template, so say it up front."""
    for profile, names in sorted(settings.routed_profiles.items()):
        missing = catalog.missing(names)
        if missing:
            log.warning(
                "profile_templates_missing",
                profile=profile,
                missing=missing,
                available=sorted(catalog.templates),
            )


def changes(old: Catalog, new: Catalog) -> dict[str, list[str]]:
    """What a reload did, by template name."""
    before, after = old.digests, new.digests
    return {
        "added": sorted(after.keys() - before.keys()),
        "changed": sorted(n for n in after.keys() & before.keys() if after[n] != before[n]),
        "removed": sorted(before.keys() - after.keys()),
        "stale": sorted(n for n in new.errors if n in new.templates),
        "broken": new.broken,
        "fixed": sorted(n for n in old.errors if n not in new.errors and n in new.templates),
    }


class Certificate:
    """The serving certificate and key. A new pair is loaded into a fresh context and checked
    before new connections get it; a bad pair leaves the serving one in place."""

    name = "tls"

    def __init__(self, cert: Path, key: Path, holder: TLSHolder, metrics: Metrics) -> None:
        self.cert = cert
        self.key = key
        self.holder = holder
        self.metrics = metrics

    def read(self) -> KeyPair | str:
        try:
            return read_pair(self.cert, self.key)
        except TLSError as exc:
            return str(exc)

    def build(self, pair: KeyPair | str) -> Served | str:
        if isinstance(pair, str):
            return pair
        try:
            return build(pair)
        except TLSError as exc:
            return str(exc)

    def apply(self, built: Served | str) -> None:
        if isinstance(built, str):
            log.error(
                "tls_reload_failed", error=built, serving_expires=_iso(self.holder.expires_at)
            )
            self.metrics.tls_reloaded("failure", self.holder.expires_at)
            return
        self.holder.swap(built)
        self.metrics.tls_reloaded("success", built.expires_at)
        log.info("tls_reloaded", expires=_iso(built.expires_at))

    def crashed(self) -> None:
        self.metrics.tls_reloaded("failure", self.holder.expires_at)


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()
