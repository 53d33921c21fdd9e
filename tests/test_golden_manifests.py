"""Golden cases of `sidecar-injector inject -f` on whole manifests, Lists above all:
tests/golden-manifests/<case>/input.yaml is what the command reads (with the example templates),
output.yaml what it prints, messages.yaml its exit code and stderr lines. New directories are
picked up automatically; a missing or stale expectation fails. Regenerate with
REGENERATE_GOLDEN=1, as the engine's goldens (tests/test_golden.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from injector.lists import is_list, objects
from tests.helpers import check_golden
from tests.k8s import assert_valid
from tests.test_cli import EXAMPLES, run

ROOT = Path(__file__).parent / "golden-manifests"
CASES = sorted(p for p in ROOT.iterdir() if p.is_dir())
INPUT = "input.yaml"


def assert_every_object_valid(docs: list[Any]) -> None:
    """Each object, inside Lists too, against the Kubernetes schemas (an item of a typed List
    with the kind and apiVersion the List gives it); a typed List also as a whole. `kind: List`
    itself has no schema: it is kubectl's, not the API's."""
    for doc in docs:
        if is_list(doc) and doc["kind"] != "List":
            assert_valid(doc)
        for item in objects(doc):
            assert_valid(item.resolved)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_manifest(case: Path) -> None:
    source = (case / INPUT).read_text()
    inputs = list(yaml.safe_load_all(source))
    assert_every_object_valid(inputs)
    result = run("inject", "--templates-dir", str(EXAMPLES / "templates"), "-f", str(case / INPUT))
    assert "Traceback" not in result.stderr
    outputs = list(yaml.safe_load_all(result.stdout))
    assert_every_object_valid(outputs)
    if result.returncode == 0:
        assert len(outputs) == len(inputs)
        for before, after in zip(inputs, outputs, strict=True):
            assert_same_shape(before, after)
    else:
        assert outputs == [], "on an error inject prints nothing"
    messages = {"exit": result.returncode, "stderr": result.stderr.splitlines()}
    actual = {
        "output.yaml": result.stdout,
        "messages.yaml": yaml.safe_dump(messages, sort_keys=False, width=1000),
    }
    check_golden(case, actual, {INPUT}, lambda _, text: list(yaml.safe_load_all(text)))


def assert_same_shape(before: Any, after: Any) -> None:
    """A List comes out as it went in: every field but `items` equal, as many items, each of
    the same kind and name, Lists within walked the same way."""
    if not is_list(before):
        return
    assert is_list(after)
    assert {k: v for k, v in before.items() if k != "items"} == {
        k: v for k, v in after.items() if k != "items"
    }
    assert len(before["items"]) == len(after["items"])
    for old, new in zip(before["items"], after["items"], strict=True):
        assert old.get("kind") == new.get("kind")
        assert old.get("apiVersion") == new.get("apiVersion")
        assert (old.get("metadata") or {}).get("name") == (new.get("metadata") or {}).get("name")
        assert_same_shape(old, new)


def test_the_golden_cases_cover_lists() -> None:
    """The cases the Lists feature promises stay covered: a List of Deployments, a List
    holding a List, a List in a multi-document file, an empty List."""
    assert {
        "list-of-deployments",
        "list-holding-a-list",
        "list-in-a-multi-document-file",
        "empty-list",
    } <= {case.name for case in CASES}
