"""Fixtures of the service tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from injector.catalog import Catalog
from injector.loader import load_directory
from tests.service.support import EXAMPLES, Harness, Mounts, make_harness


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.from_load(load_directory(EXAMPLES))


@pytest.fixture
def harness(catalog: Catalog) -> Harness:
    return make_harness(catalog)


@pytest.fixture
def mounts(tmp_path: Path) -> Mounts:
    """Kubelet-style templates and TLS volumes (templates empty until written)."""
    return Mounts.create(tmp_path)
