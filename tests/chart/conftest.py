"""Fixtures for the chart tests: a real helm, fetched by the project's own script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helm import REPO_ROOT, Helm, Manifest

FETCH_HELM = REPO_ROOT / "scripts" / "fetch_helm.py"


@pytest.fixture(scope="session")
def helm() -> Helm:
    """helm from PATH, else the pinned release (downloaded once into .cache/)."""
    result = subprocess.run(
        [sys.executable, str(FETCH_HELM)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/fetch_helm.py failed:\n{result.stderr}")
    return Helm(Path(result.stdout.strip()))


@pytest.fixture(scope="session")
def default_docs(helm: Helm) -> list[Manifest]:
    """Everything the chart renders with its default values."""
    return helm.template()
