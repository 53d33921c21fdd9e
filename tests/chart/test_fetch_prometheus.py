"""scripts/fetch_prometheus.py: PATH first, else Debian's package unpacked into .cache/, and a
clear reason where neither works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helm import REPO_ROOT, load_script

fetch_prometheus = load_script("fetch_prometheus")


def fake_binaries(directory: Path, names: tuple[str, ...] = ("prometheus", "promtool")) -> Path:
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def test_cache_is_under_dot_cache() -> None:
    assert REPO_ROOT / ".cache" / "prometheus" == fetch_prometheus.CACHE_DIR


def test_path_wins_when_it_has_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = fake_binaries(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(found))
    assert fetch_prometheus.find(update=False) == found.resolve()


def test_path_with_prometheus_alone_is_not_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_binaries(tmp_path / "bin", ("prometheus",))))
    assert fetch_prometheus.on_path() is None


def test_a_cached_pair_is_used_without_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_binaries(tmp_path / "cache" / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cached = fetch_prometheus.fetch(update=False, cache_dir=tmp_path / "cache")
    assert cached == tmp_path / "cache" / "bin"


def test_without_apt_the_reason_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(fetch_prometheus.FetchError, match="not a Debian machine"):
        fetch_prometheus.fetch(update=False, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "bin").exists()
    assert os.listdir(tmp_path / "cache") == [], "no leftovers"
