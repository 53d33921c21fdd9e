"""Run the real helm binary on the chart and hand back parsed manifests."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "sidecar-injector"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*.yaml"))
RELEASE = "sidecar-injector"
NAMESPACE = "sidecar-injector"

Manifest = dict[str, Any]
Values = Mapping[str, Any]


class HelmError(AssertionError):
    """helm exited non-zero; the message carries its stderr."""


@dataclass
class Helm:
    """The helm binary, with renders cached: every test may ask for the same output."""

    binary: Path
    _cache: dict[str, list[Manifest]] = field(default_factory=dict)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, check=False, timeout=60
        )

    def template(
        self,
        values: Values | None = None,
        *,
        values_files: Sequence[Path] = (),
        show_only: Iterable[str] = (),
        release: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> list[Manifest]:
        """`helm template` output as parsed objects (never compared as text)."""
        only = tuple(show_only)
        key = json.dumps(
            [values or {}, [str(f) for f in values_files], only, release, namespace],
            sort_keys=True,
        )
        if key not in self._cache:
            args = ["template", release, str(CHART_DIR), "--namespace", namespace]
            for path in only:
                args += ["--show-only", path]
            result = self._with_values(args, values, values_files)
            if result.returncode != 0:
                raise HelmError(result.stderr)
            self._cache[key] = [d for d in yaml.safe_load_all(result.stdout) if d]
        return self._cache[key]

    def template_error(self, values: Values) -> str:
        """The error helm reports for values the chart must refuse."""
        args = ["template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
        result = self._with_values(args, values, ())
        if result.returncode == 0:
            raise AssertionError(f"helm accepted values it should refuse: {values}")
        return result.stderr

    def lint(self, values_files: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
        args = ["lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE]
        return self._with_values(args, None, values_files)

    def _with_values(
        self, args: list[str], values: Values | None, values_files: Sequence[Path]
    ) -> subprocess.CompletedProcess[str]:
        for path in values_files:
            args += ["--values", str(path)]
        if not values:
            return self.run(*args)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
            yaml.safe_dump(dict(values), extra)
            extra.flush()
            return self.run(*args, "--values", extra.name)


def only(docs: Iterable[Manifest], kind: str) -> Manifest:
    """The single object of this kind."""
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def named(docs: Iterable[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def kinds(docs: Iterable[Manifest]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def webhook_container(docs: Iterable[Manifest]) -> Manifest:
    containers: list[Manifest] = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def flags(container: Manifest) -> dict[str, str]:
    """The container's `--flag=value` arguments as a dict; the sub-command is args[0]."""
    args: list[str] = container["args"]
    out: dict[str, str] = {}
    for arg in args[1:]:
        name, sep, value = arg.partition("=")
        assert arg.startswith("--") and sep, f"argument {arg!r} is not --flag=value"
        assert name not in out, f"{name} given twice"
        out[name] = value
    return out
