"""Golden cases: tests/golden/<case>/ holds a pod and the annotations it is submitted with,
and the expected patch, patched pod and messages. Regenerate with REGENERATE_GOLDEN=1."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from injector.catalog import Catalog
from injector.engine import Decision, decide
from injector.loader import directory_sources, load_sources
from injector.policy import Settings, route
from tests.helpers import check_golden
from tests.k8s import assert_valid

ROOT = Path(__file__).parent / "golden"
EXAMPLES = Path(__file__).parents[1] / "examples" / "templates"
CASES = sorted(p for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("_"))
INPUTS = {"pod.yaml", "annotations.yaml", "settings.yaml"}
"""settings.yaml: Settings fields, plus `namespace_label`, the value of the pod's namespace's
`<prefix>/inject` label (routed as the chart's webhook entries route it)."""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    result = load_sources([*directory_sources(EXAMPLES), *directory_sources(ROOT / "_templates")])
    assert not result.errors, result.errors
    return Catalog.from_load(result)


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def submitted_pod(case: Path) -> dict[str, Any]:
    pod: dict[str, Any] = read_yaml(case / "pod.yaml")
    annotations = read_yaml(case / "annotations.yaml")
    if annotations:
        pod["metadata"].setdefault("annotations", {}).update(annotations)
    return pod


def settings_for(case: Path) -> tuple[Settings, str | None]:
    """The case's settings, and the profile its namespace's label routes it to."""
    raw = read_yaml(case / "settings.yaml") or {}
    label = raw.pop("namespace_label", None)
    if "default_templates" in raw:
        raw["default_templates"] = tuple(raw["default_templates"])
    if "profiles" in raw:
        raw["profiles"] = {name: tuple(names) for name, names in raw["profiles"].items()}
    settings = Settings(**raw)
    return settings, route(label, settings)


def messages(decision: Decision) -> dict[str, Any]:
    return {
        "skip": decision.skip,
        "profile": decision.profile,
        "requested": list(decision.requested),
        "injected": list(decision.injected),
        "warnings": list(decision.warnings),
        "errors": [
            {"reason": e.reason, "template": e.template, "message": e.message}
            for e in decision.errors
        ],
    }


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=100)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, catalog: Catalog) -> None:
    pod = submitted_pod(case)
    assert_valid(pod)
    original = copy.deepcopy(pod)
    settings, profile = settings_for(case)
    namespace = pod["metadata"].get("namespace", "default")
    decision = decide(pod, namespace, catalog, settings, profile)
    patch = list(decision.patch)
    assert pod == original, "the engine must not modify the pod it is given"
    assert all(op["op"] == "add" for op in patch)
    patched = jsonpatch.apply_patch(pod, copy.deepcopy(patch))
    assert_valid(patched)
    if patch:
        again = decide(patched, namespace, catalog, settings, profile)
        assert again.skip == "already_injected" and again.patch == ()
    actual = {
        "patch.json": json.dumps(patch, indent=2) + "\n",
        "injected.yaml": dump_yaml(patched),
        "messages.yaml": dump_yaml(messages(decision)),
    }
    check_golden(case, actual, INPUTS, _parse)


def test_golden_cases_cover_every_template(catalog: Catalog) -> None:
    used: set[str] = set()
    for case in CASES:
        used.update(read_yaml(case / "messages.yaml")["requested"])
    assert set(catalog.templates) <= used


def _parse(name: str, text: str) -> Any:
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
